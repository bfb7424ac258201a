"""Run one test of Eclipse Paho's MQTT 5 interoperability suite against openblynk's broker.

``python _paho_interop5_run.py <interoperability folder> <test name>``: starts the broker with
the test authenticator (tests/integration/broker/_broker_harness.py), gives every client of the
suite the integration credentials of organization 1 (``int-a``), runs ``client_test5.Test.<name>``
and exits 0 if it passed. One test per process, as the suite can hang (test_paho_interop5.py
runs this with a timeout).
"""

from __future__ import annotations

import asyncio
import importlib
import io
import sys
import unittest
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[3]))

from _broker_harness import INTEGRATION_PASSWORD, ours  # noqa: E402

TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
NOSUBSCRIBE_TOPICS = ("dev/nosubscribe",)  # refused with 0x80 in a namespace (broker.namespace)


def configured(module: Any, port: int) -> None:
    """Credentials on every connect, our topics, and the globals only the suite's main sets."""
    client = module.mqtt_client.Client
    original = client.connect

    def connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("username", "int-a")
        kwargs.setdefault("password", INTEGRATION_PASSWORD.encode())
        return original(self, *args, **kwargs)

    def set_data() -> None:
        module.topics, module.wildtopics, module.nosubscribe_topics = TOPICS, WILDTOPICS, NOSUBSCRIBE_TOPICS

    client.connect = connect
    module.setData = set_data
    module.host, module.port, module.topic_prefix = "127.0.0.1", port, ""


async def main(folder: str, name: str) -> int:
    async with ours() as harness:
        sys.path.insert(0, folder)
        module = importlib.import_module("client_test5")
        configured(module, harness.port)
        output = io.StringIO()

        def run() -> unittest.TestResult:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the suite's own warnings (returned verdicts, ...)
                suite = unittest.TestSuite([module.Test(name)])  # a suite runs the class's setUpClass
                return unittest.TextTestRunner(stream=output, verbosity=2).run(suite)

        result = await asyncio.to_thread(run)
        sys.stdout.write(output.getvalue())
        return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
