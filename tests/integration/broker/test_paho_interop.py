"""Eclipse Paho's MQTT 3.1.1 interoperability tests against an integration namespace.

The suite (``interoperability/client_test.py`` of ``eclipse/paho.mqtt.testing``, tested at
commit 9d7bb80bb8b9d9cfc0b52f8cb4c1916401281103) is not copied here and is on no package
registry, so it is run from a checkout named by ``PAHO_MQTT_TESTING`` (its ``interoperability``
folder)::

    git clone https://github.com/eclipse/paho.mqtt.testing /tmp/paho.mqtt.testing
    PAHO_MQTT_TESTING=/tmp/paho.mqtt.testing/interoperability \\
        .venv/bin/python -m pytest tests/integration/broker/test_paho_interop.py

The wrapper starts openblynk's broker with the test authenticator, gives every client of the
suite the integration credentials of organization 1 (``int-a``; the suite's client has no
credentials of its own, so its ``connect`` gets them as defaults) and runs the suite's
``Test`` case (all of it, ``$`` topics and subscribe failure included) in a thread. Broker
configuration the suite needs: its ``nosubscribe_topics`` is set to ``dev/nosubscribe``, a
filter under the reserved ``dev/`` prefix that is not the device feed's, which the namespace
refuses with SUBACK 0x80 (``broker.namespace``); nothing else is configured.

Without the checkout the same checks run from ``test_paho_interop_port.py``: one test per
case of the suite, with its names, steps and assertions, on paho-mqtt.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import os
import sys
import unittest
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _broker_harness import INTEGRATION_PASSWORD, ours

SUITE_ENV = "PAHO_MQTT_TESTING"
TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
NOSUBSCRIBE_TOPICS = ("dev/nosubscribe",)


def suite_folder() -> Path:
    folder = os.environ.get(SUITE_ENV)
    if not folder or not (Path(folder) / "client_test.py").is_file():
        pytest.skip(
            "PAHO_MQTT_TESTING does not name a checkout of eclipse/paho.mqtt.testing's interoperability/ "
            "(the suite is on no package registry this machine reaches); test_paho_interop_port.py runs its checks"
        )
    return Path(folder)


@contextmanager
def imported(folder: Path) -> Iterator[ModuleType]:
    """The suite's ``client_test`` module, imported from ``folder`` (and forgotten afterwards)."""
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("client_test")
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == "client_test" or n == "mqtt" or n.startswith("mqtt.")]:
            del sys.modules[name]


def with_credentials(module: ModuleType) -> None:
    """Every ``connect`` of the suite's client logs in as integration ``int-a``."""
    client = module.mqtt_client.Client
    original = client.connect

    def connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("username", "int-a")
        kwargs.setdefault("password", INTEGRATION_PASSWORD.encode())
        return original(self, *args, **kwargs)

    client.connect = connect


def run(suite: unittest.TestSuite, output: io.StringIO) -> unittest.TestResult:
    """Run the suite; its test methods return their verdict too (``return succeeded``), which
    Python 3.11+ warns about: that warning, and only it, is not an error here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "It is deprecated to return a value", DeprecationWarning)
        return unittest.TextTestRunner(stream=output, verbosity=2).run(suite)


async def test_paho_interoperability_suite_passes_in_a_namespace() -> None:
    folder = suite_folder()
    async with ours() as harness:
        with imported(folder) as module:
            with_credentials(module)
            module.host, module.port = "127.0.0.1", harness.port
            module.topics, module.wildtopics = TOPICS, WILDTOPICS
            module.nosubscribe_topics = NOSUBSCRIBE_TOPICS
            suite = unittest.TestLoader().loadTestsFromTestCase(module.Test)
            output = io.StringIO()
            result = await asyncio.to_thread(run, suite, output)
    assert result.testsRun == 10, output.getvalue()
    assert result.wasSuccessful(), output.getvalue()
