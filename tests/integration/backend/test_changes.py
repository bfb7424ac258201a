"""Changes made by one process reach the others at once (PostgreSQL LISTEN/NOTIFY).

The test stack runs with a 600-second cache, so anything seen here within seconds came
through a change notice, not through the cache expiring.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from backend.db.changes import Change
from backend.transfer.schemas import DeviceOut
from tests.integration.backend.conftest import PahoDevice
from tests.support.net import wait_for
from tests.support.provision import provision
from tests.support.stack import StackConfig


def cli(stack: StackConfig, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args], env=stack.env(), input=stdin, capture_output=True, timeout=60
    )


def connack(stack: StackConfig, token: str) -> str:
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set("device", token)
    codes: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p=None: codes.put(rc)
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    try:
        return str(codes.get(timeout=10))
    finally:
        client.disconnect()
        client.loop_stop()


def test_rotating_a_token_drops_the_device_and_refuses_the_old_token(
    stack: StackConfig, http: httpx.Client, device: PahoDevice
) -> None:
    old = device.info.token
    dropped: queue.Queue[object] = queue.Queue()
    device.client.on_disconnect = lambda c, u, f, rc, p=None: dropped.put(rc)
    device.client.reconnect_delay_set(60, 120)  # don't let paho race back in with the old token
    result = cli(stack, "device", "token", device.info.name, "--rotate")
    assert result.returncode == 0, result.stderr.decode()
    new = result.stdout.decode().strip()
    dropped.get(timeout=10)  # the broker dropped the live connection
    wait_for(
        lambda: http.get(f"/external/api/get?token={old}&v0").json() == {"error": {"message": "Invalid token."}},
        message="the app to forget the old token",
    )
    assert connack(stack, old) == "Bad user name or password"
    assert connack(stack, new) == "Success"
    assert http.get(f"/external/api/isHardwareConnected?token={new}").status_code == 200


def test_a_template_edit_reaches_the_ingest_at_once(stack: StackConfig, http: httpx.Client, device: PahoDevice) -> None:
    device.publish("ds/Humidity", "40")
    assert b"no datastream named 'Humidity'" in device.next(topic_prefix="downlink/diag")[1]
    doc = {
        "templates": [
            {
                "name": device.info.template,
                "datastreams": [
                    {"pin": "V0", "name": "Temperature", "type": "double"},
                    {"pin": "V5", "name": "Humidity", "type": "integer", "min": 0, "max": 100},
                ],
            }
        ]
    }
    assert cli(stack, "import", "-", stdin=json.dumps(doc).encode()).returncode == 0
    wait_for(
        lambda: (
            device.publish("ds/Humidity", "41"),
            http.get(f"/external/api/get?token={device.info.token}&v5").text == "41",
        )[1],
        interval=0.2,
        message="the new datastream to be accepted",
    )


def test_change_payloads_round_trip() -> None:
    for change in (
        Change("device", 7),
        Change("device", 7, revoked=True),
        Change("template", 3),
        Change("user", 4),
        Change("role", 5),
        Change("org", 6),
    ):
        assert Change.decode(change.encode()) == change
    for junk in ("", "device", "device:x", "account:1", "user:²", "device:1:2:3"):
        assert Change.decode(junk) is None


def test_import_moving_a_device_to_another_template(
    stack: StackConfig, http: httpx.Client, devices: list[DeviceOut]
) -> None:
    moved = devices[1]
    other = provision(
        stack.database_url,
        {
            "templates": [
                {"name": f"Other {moved.id}", "datastreams": [{"pin": "V0", "name": "Speed", "type": "string"}]}
            ]
        },
    )
    assert other.devices == []
    http.get(f"/external/api/get?token={moved.token}&v1")  # warm the app's cache with the old template
    doc = {"devices": [{"name": moved.name, "template": f"Other {moved.id}"}]}
    assert cli(stack, "import", "-", stdin=json.dumps(doc).encode()).returncode == 0
    wait_for(
        lambda: (
            http.get(f"/external/api/get?token={moved.token}&v1").json()
            == {"error": {"message": "No datastream setup for that pin."}}
        ),
        message="the move",
    )


def test_the_only_app_process_runs_the_scheduled_jobs(http: httpx.Client) -> None:
    wait_for(lambda: http.get("/healthz").json()["scheduler_leader"] is True, message="scheduler leadership")
