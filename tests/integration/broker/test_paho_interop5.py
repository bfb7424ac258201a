"""Eclipse Paho's MQTT 5 interoperability tests against an integration namespace (issue #18).

The suite (``interoperability/client_test5.py`` of ``eclipse/paho.mqtt.testing``, run at commit
9d7bb80bb8b9d9cfc0b52f8cb4c1916401281103) is run from a checkout named by ``PAHO_MQTT_TESTING``
as for test_paho_interop.py (MQTT 3.1.1), one test per process with a timeout, as the suite can
hang (_paho_interop5_run.py). Every test of the suite must pass (the last two to, the counted-down
session expiry and the broker's own receive maximum, came with issue #18's second round).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_paho_interop import suite_folder

RUNNER = Path(__file__).with_name("_paho_interop5_run.py")
TIMEOUT = 90.0

PASSING = [
    "test_basic",
    "test_zero_length_clientid",
    "test_offline_message_queueing",
    "test_overlapping_subscriptions",
    "test_keepalive",
    "test_redelivery_on_reconnect",
    "test_subscribe_failure",
    "test_dollar_topics",
    "test_unsubscribe",
    "test_assigned_clientid",
    "test_client_topic_alias",
    "test_maximum_packet_size",
    "test_shared_subscriptions",
    "test_flow_control1",
    "test_retained_message",
    "test_will_message",
    "test_user_properties",
    "test_payload_format",
    "test_publication_expiry",
    "test_request_response",
    "test_subscribe_options",
    "test_subscribe_identifiers",
    "test_will_delay",
    "test_server_keep_alive",
    "test_server_topic_alias",
    "test_session_expiry",
    "test_flow_control2",
]


def run_one(name: str) -> subprocess.CompletedProcess[str] | None:
    """The test's run, or ``None`` if it did not finish in :data:`TIMEOUT` seconds."""
    folder = suite_folder()
    if not (folder / "client_test5.py").is_file():
        pytest.fail(f"{folder} has no client_test5.py")
    try:
        return subprocess.run(
            [sys.executable, str(RUNNER), str(folder), name], capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.parametrize("name", PASSING)
def test_passes(name: str) -> None:
    done = run_one(name)
    assert done is not None, f"{name} did not finish in {TIMEOUT:.0f} s"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_every_test_of_the_suite_is_run() -> None:
    source = (suite_folder() / "client_test5.py").read_text()
    assert sorted(re.findall(r"^    def (test_\w+)\(", source, re.MULTILINE)) == sorted(PASSING)
