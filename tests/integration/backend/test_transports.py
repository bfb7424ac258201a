"""MQTT over TLS (with the CA served at /ca.pem) and over WebSocket at /mqtt on the HTTP port.

The WebSocket bridge names each client to the broker's internal listener (127.0.0.1) in a PROXY
v2 header signed with a key derived from the secret key; any other local process connecting
there is closed unread, so it cannot choose the address a device is recorded at or that the
failed-login throttle counts (issue #11 item 3).
"""

from __future__ import annotations

import queue
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.transfer.schemas import DeviceOut
from broker import proxy_header
from tests.support.accounts import AccountsStack, start_accounts_stack
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

THROTTLE = 3
"""Failed MQTT logins per address and minute in the ``throttled`` stack."""


def connect(client: paho.Client, host: str, port: int) -> object:
    codes: queue.Queue[object] = queue.Queue()
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


def test_device_over_tls_pinning_the_served_ca(
    stack: StackConfig, http: httpx.Client, devices: list[DeviceOut], ca_file: Path
) -> None:
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


def test_device_over_websocket_on_the_http_port(
    stack: StackConfig, http: httpx.Client, devices: list[DeviceOut]
) -> None:
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
    request = (
        f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", stack.http_port), timeout=5) as sock:
        sock.sendall(request)
        answer = sock.recv(1024)
    assert not answer.startswith(b"HTTP/1.1 101"), answer[:80]


@pytest.fixture(scope="module")
def throttled(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    """A broker and app that refuse an address after three failed MQTT logins within a minute."""
    yield from start_accounts_stack(pg_server, template_db, "ws_bridge", auth_failures_per_minute=str(THROTTLE))


def _connect_packet(password: str) -> bytes:
    def field(text: str) -> bytes:
        return len(text.encode()).to_bytes(2, "big") + text.encode()

    body = field("MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big") + field("") + field("device") + field(password)
    return bytes([0x10, len(body)]) + body


def _straight_to_the_broker(port: int, header: bytes, password: str) -> bytes:
    """What the broker's proxy listener answers a local process sending ``header`` and a CONNECT
    before closing (a CONNACK would be ``20 02 00 rc``)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(header + _connect_packet(password))
        while chunk := sock.recv(1024):
            answer += chunk
            if len(answer) >= 4:  # a CONNACK: the broker believed the header
                break
    return answer


def _ws_device(port: int, token: str) -> tuple[paho.Client, object]:
    client = paho.Client(CallbackAPIVersion.VERSION2, transport="websockets")
    client.ws_set_options(path="/mqtt")
    client.username_pw_set("device", token)
    return client, connect(client, "127.0.0.1", port)


def test_a_local_process_cannot_speak_for_the_websocket_bridge(throttled: AccountsStack) -> None:
    config = throttled.config
    device = provision(config.database_url, thermostat_doc()).devices[0]
    forged = [
        b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 8080\r\n",  # the old bridge's v1 line
        proxy_header(b"not the server's key".ljust(32, b"!"), ("127.0.0.1", 40000)),  # v2, wrong key
        b"PROXY TCP4 203.0.113.66 127.0.0.1 40000 8080\r\n",
    ]
    # forge the address the device is recorded at, with its own token: closed, no CONNACK
    assert _straight_to_the_broker(config.proxy_port, forged[2], device.token) == b""
    # fail logins "from" 127.0.0.1, where the real devices are, past the throttle: none counted
    for header in forged * THROTTLE:
        assert _straight_to_the_broker(config.proxy_port, header, "not-a-token-" + "x" * 20) == b""
    client, code = _ws_device(config.http_port, device.token)  # a real device over the bridge
    try:
        assert str(code) == "Success"
        client.publish("ds/Temperature", "21.5", qos=1).wait_for_publish(5)
        with httpx.Client(base_url=config.base_url, timeout=10) as http:
            wait_for(lambda: http.get(f"/external/api/get?token={device.token}&v0").text == "21.5")
        with psycopg.connect(config.database_url) as conn:
            row = conn.execute("SELECT online, ip FROM device WHERE id = %s", (device.id,)).fetchone()
        assert row == (True, "127.0.0.1")  # its real address, as the bridge saw it
    finally:
        client.disconnect()
        client.loop_stop()
