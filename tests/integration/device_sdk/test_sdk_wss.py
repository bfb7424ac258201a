"""The SDK over ``wss://…/mqtt`` on the app's HTTPS port (issue #18 item 4), pinning the CA the
server serves at /ca.pem: a ``downlink/redirect`` moves it there from plain MQTT, and values go
up and writes come down through TLS and the WebSocket bridge."""

from __future__ import annotations

import queue
from pathlib import Path

import httpx
from sdk_harness import FAST
from test_sdk_websocket import redirect

from device_sdk import Device
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig


def test_a_redirect_to_wss_with_the_served_ca(stack: StackConfig, tmp_path: Path) -> None:
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    api = httpx.Client(base_url=stack.base_url, timeout=10)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(api.get("/ca.pem").content)
    wss_uri = f"wss://localhost:{stack.https_port}/mqtt"
    writes: queue.Queue[str] = queue.Queue()
    try:
        with Device(info.token, "127.0.0.1", stack.mqtt_port, ca_certs=str(ca), backoff=FAST) as device:
            device.on_write("Power", writes.put)
            wait_for(
                lambda: api.get("/external/api/isHardwareConnected", params={"token": info.token}).text == "true",
                message="the device online over TCP",
            )
            redirect(stack, info.name, wss_uri)
            wait_for(
                lambda: device.connected and device.endpoint.uri == wss_uri,
                message="the device back online over wss",
            )
            assert device.endpoint.tls and device.endpoint.transport == "websockets"
            device.write("Temperature", 24.5)
            wait_for(
                lambda: api.get("/external/api/get", params={"token": info.token, "v0": ""}).text == "24.5",
                message="the value sent over wss stored",
            )
            assert api.get("/external/api/update", params={"token": info.token, "V1": "1"}).status_code == 200
            assert writes.get(timeout=10) == "1"
    finally:
        api.close()
