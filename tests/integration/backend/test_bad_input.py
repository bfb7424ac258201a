"""Every bad input a device can send through the real broker and app gets a clear answer and
costs nobody else anything: a healthy device keeps working throughout."""

from __future__ import annotations

import socket
import struct

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.transfer.schemas import DeviceOut
from tests.integration.backend.conftest import PahoDevice, connect_device
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.stack import StackConfig


def raw_connect(token: str, keepalive: int = 30) -> bytes:
    """A minimal MQTT 3.1.1 CONNECT packet with user name ``device``."""

    def s(text: str) -> bytes:
        data = text.encode()
        return struct.pack("!H", len(data)) + data

    variable = s("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", keepalive)
    payload = s("raw") + s("device") + s(token)
    body = variable + payload
    return bytes([0x10, len(body)]) + body


def assert_healthy(http: httpx.Client, healthy: PahoDevice, value: str) -> None:
    """The well-behaved device still gets its values stored."""
    healthy.publish("ds/Label", value, qos=1)
    wait_for(
        lambda: http.get(f"/external/api/get?token={healthy.info.token}&v2").text == value,
        message="the healthy device's value",
    )


def test_unknown_token_gets_connack_4(stack: StackConfig, http: httpx.Client, device: PahoDevice) -> None:
    with socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=5) as sock:
        sock.sendall(raw_connect("x" * 32))
        assert sock.recv(4) == b"\x20\x02\x00\x04"
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set("device", "wrong-token")
    codes: list[object] = []
    client.on_connect = lambda c, u, f, rc, p=None: codes.append(rc)
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    wait_for(lambda: codes)
    client.loop_stop()
    assert str(codes[0]) == "Bad user name or password"  # what Blynk's paho sample compares
    assert_healthy(http, device, "after bad tokens")


def test_foreign_topic_publish_is_dropped_and_reported(
    stack: StackConfig, http: httpx.Client, device: PahoDevice, devices: list[DeviceOut]
) -> None:
    other = devices[1]
    device.publish(f"d/{other.id}/ds/Label", "hijack", qos=1)
    topic, payload = device.next(topic_prefix="downlink/diag")
    assert payload == f'publish to "d/{other.id}/ds/Label" refused: not a Blynk uplink topic'.encode()
    assert http.get(f"/external/api/get?token={other.token}&v2").text == "none"  # untouched
    assert_healthy(http, device, "after a foreign publish")


@pytest.mark.parametrize("topic_filter", ["#", "d/#", "sys/presence/+", "ds/Label", "downlink/+/x"])
def test_foreign_subscription_gets_suback_0x80(stack: StackConfig, devices: list[DeviceOut], topic_filter: str) -> None:
    dev = connect_device(stack, devices[1], subscribe=False)
    granted: list[object] = []
    dev.client.on_subscribe = lambda c, u, mid, rcs, p=None: granted.extend(rcs)
    dev.client.subscribe([(topic_filter, 0), ("downlink/#", 0)])
    wait_for(lambda: len(granted) == 2)
    assert [int(g.value) for g in granted] == [0x80, 0]  # type: ignore[attr-defined]
    dev.client.disconnect()
    dev.client.loop_stop()


def test_oversized_packet_closes_only_that_connection(
    stack: StackConfig, http: httpx.Client, device: PahoDevice, devices: list[DeviceOut]
) -> None:
    with socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=5) as sock:
        sock.sendall(raw_connect(devices[1].token))
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        topic = b"ds/Label"
        length = 2 + len(topic) + 10_000_000  # declares 10 MB; we never send them
        header = bytearray([0x30])
        while True:
            byte, length = length % 128, length // 128
            header.append(byte | (0x80 if length else 0))
            if not length:
                break
        sock.sendall(bytes(header) + struct.pack("!H", len(topic)) + topic + b"x" * 100)
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed by the broker
    assert_healthy(http, device, "after an oversized packet")


def test_wrong_type_and_unknown_datastream(http: httpx.Client, device: PahoDevice) -> None:
    device.publish("ds/Temperature", "hot")
    assert device.next(topic_prefix="downlink/diag")[1] == b"ds/Temperature: Temperature expects a number, got 'hot'"
    device.publish("ds/Nope", "1")
    assert device.next(topic_prefix="downlink/diag")[1].startswith(b"ds/Nope: no datastream named 'Nope'")
    assert_healthy(http, device, "after bad values")


def test_malformed_ota_status_is_reported(device: PahoDevice) -> None:
    device.publish("ota/status", "ok")  # not the JSON form of our extension (README, "Blynk.Air")
    assert device.next(topic_prefix="downlink/diag")[1].startswith(b'ota/status: expected {"status": one of')
    device.publish("ota/status", '{"status": "failure"}')
    assert (
        device.next(topic_prefix="downlink/diag")[1] == b"ota/status: no firmware update is in progress for this device"
    )


def test_garbage_bytes_close_only_that_connection(stack: StackConfig, http: httpx.Client, device: PahoDevice) -> None:
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\x10\xff\xff\xff\xff\xff", b"\x00" * 64):
        with socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=5) as sock:
            sock.sendall(junk)
            sock.settimeout(15)
            try:
                assert sock.recv(100) in (b"",)
            except ConnectionResetError:
                pass
    assert_healthy(http, device, "after garbage")


def test_a_silent_device_goes_offline_when_its_keepalive_runs_out(
    stack: StackConfig, http: httpx.Client, devices: list[DeviceOut]
) -> None:
    """Silence ends the connection and the device shows offline; that the deadline is 1.5 ×
    the keep-alive is checked on a clock the test moves (tests/unit/broker/test_broker_framing.py)."""
    token = devices[1].token
    with socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=5) as sock:
        sock.sendall(raw_connect(token, keepalive=1))
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        wait_for(lambda: http.get(f"/external/api/isHardwareConnected?token={token}").text == "true")
        # now say nothing: no PINGREQ; the broker must drop us and publish offline presence
        wait_for(
            lambda: http.get(f"/external/api/isHardwareConnected?token={token}").text == "false",
            timeout=30,
            message="offline after the keep-alive ran out",
        )
        sock.settimeout(5)
        assert sock.recv(10) == b""


def test_a_flooding_device_is_warned_and_others_keep_working(
    stack: StackConfig, http: httpx.Client, device: PahoDevice, devices: list[DeviceOut], paho_device: ConnectDevice
) -> None:
    flooder = paho_device(stack, devices[1])
    for i in range(300):  # far above 50 messages/s, in well under a second
        flooder.client.publish("ds/Temperature", str(i % 80))
    topic, payload = flooder.next(topic_prefix="downlink/diag")
    assert payload == b"rate limit exceeded: 50 messages/s; messages are being dropped"
    assert_healthy(http, device, "during a flood")
