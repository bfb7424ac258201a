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


def test_device_over_websocket_on_the_http_port(stack: StackConfig, http: httpx.Client,
                                                devices: list[DeviceOut]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, transport="websockets")
    client.ws_set_options(path="/mqtt")
    client.username_pw_set("device", devices[1].token)
    try:
        assert str(connect(client, "127.0.0.1", stack.http_port)) == "Success"
        client.publish("ds/Temperature", "7.5", qos=1).wait_for_publish(5)
        wait_for(lambda: http.get(f"/external/api/get?token={devices[1].token}&v0").text == "7.5")
        import psycopg
        with psycopg.connect(stack.database_url) as conn:
            row = conn.execute("SELECT online, ip FROM device WHERE id = %s", (devices[1].id,)).fetchone()
        assert row == (True, "127.0.0.1")  # the bridge passed the client's own address on
    finally:
        client.disconnect()
        client.loop_stop()


def test_websocket_without_the_mqtt_subprotocol_is_refused(stack: StackConfig) -> None:
    import base64
    import os
    import socket
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", stack.http_port), timeout=5) as sock:
        sock.sendall(request)
        answer = sock.recv(1024)
    assert not answer.startswith(b"HTTP/1.1 101"), answer[:80]
