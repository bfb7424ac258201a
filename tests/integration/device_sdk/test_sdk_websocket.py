"""The SDK's MQTT over WebSocket, against the real thing: the app's ``/mqtt`` bridge in front of
the broker, reached through a ``downlink/redirect`` the CLI sends (Device Menu's "redirect")."""

from __future__ import annotations

import queue
import subprocess
import sys

import httpx
from sdk_harness import FAST

from device_sdk import Device
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig


def redirect(stack: StackConfig, name: str, uri: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "backend.cli", "device", "redirect", name, uri],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, f"sent redirect to {name}\n"), done.stderr


def test_a_redirect_moves_the_device_onto_the_apps_websocket_bridge(stack: StackConfig) -> None:
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    api = httpx.Client(base_url=stack.base_url, timeout=10)
    ws_uri = f"ws://127.0.0.1:{stack.http_port}/mqtt"
    writes: queue.Queue[str] = queue.Queue()
    try:
        with Device(info.token, "127.0.0.1", stack.mqtt_port, template_id="TMPLws", backoff=FAST) as device:
            device.on_write("Power", writes.put)
            assert device.endpoint.transport == "tcp"
            wait_for(
                lambda: api.get("/external/api/isHardwareConnected", params={"token": info.token}).text == "true",
                message="the device online over TCP",
            )
            redirect(stack, info.name, ws_uri)
            wait_for(
                lambda: device.connected and device.endpoint.transport == "websockets",
                message="the device back online over WebSocket",
            )
            assert device.endpoint.uri == ws_uri
            device.write("Temperature", 21.5)  # up through the bridge
            wait_for(
                lambda: api.get("/external/api/get", params={"token": info.token, "v0": ""}).text == "21.5",
                message="the value sent over WebSocket stored",
            )
            r = api.get("/external/api/update", params={"token": info.token, "V1": "1"})  # and down through it
            assert r.status_code == 200, r.text
            assert writes.get(timeout=10) == "1"
            assert device.connected and device.endpoint.transport == "websockets"
        wait_for(
            lambda: api.get("/external/api/isHardwareConnected", params={"token": info.token}).text == "false",
            message="the device offline once it disconnected",
        )
    finally:
        api.close()
