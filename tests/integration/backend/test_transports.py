"""MQTT over TLS (with the CA served at /ca.pem) and over WebSocket at /mqtt on the HTTP port."""

from __future__ import annotations

import queue
import ssl
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.transfer.schemas import DeviceOut
from tests.support.net import wait_for
from tests.support.stack import StackConfig


def connect(client: paho.Client, host: str, port: int) -> object:
    codes: "queue.Queue[object]" = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p=None: codes.put(rc)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    return codes.get(timeout=10)


@pytest.fixture
def ca_file(http: httpx.Client, tmp_path: Path) -> Path:
    r = http.get("/ca.pem")
    assert r.status_code == 200 and r.text.startswith("-----BEGIN CERTIFICATE-----")
    path = tmp_path / "ca.pem"
    path.write_bytes(r.content)
    return path


def test_device_over_tls_pinning_the_served_ca(stack: StackConfig, http: httpx.Client,
                                               devices: list[DeviceOut], ca_file: Path) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set("device", devices[0].token)
    client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    try:
        assert str(connect(client, "localhost", stack.mqtts_port)) == "Success"
        client.publish("ds/Temperature", "12.5", qos=1).wait_for_publish(5)
        wait_for(lambda: http.get(f"/external/api/get?token={devices[0].token}&v0").text == "12.5")
    finally:
        client.disconnect()
        client.loop_stop()


def test_tls_with_an_unknown_ca_is_refused(stack: StackConfig, devices: list[DeviceOut]) -> None:
    context = ssl.create_default_context()  # system CAs only: our local CA is not among them
    with pytest.raises(ssl.SSLCertVerificationError):
        import socket
        with socket.create_connection(("127.0.0.1", stack.mqtts_port), timeout=5) as sock:
            context.wrap_socket(sock, server_hostname="localhost")
