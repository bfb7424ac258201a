"""Ingest v1 against the real broker and app: values, info/mcu, get/ds, presence, diag."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from tests.integration.backend.conftest import PahoDevice, is_connected
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

# Every test here runs over plain MQTT, TLS and WebSocket (see conftest).
TRANSPORTS_UNDER_TEST = ("tcp", "tls", "ws")


def value_of(http: httpx.Client, token: str, pin: str) -> str:
    return http.get(f"/external/api/get?token={token}&{pin}").text


def history_rows(conn: psycopg.Connection, device_id: int, pin: int) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT value, text_value FROM history WHERE device_id = %s AND pin = %s ORDER BY ts", (device_id, pin)
    ).fetchall()


def rollup_totals(conn: psycopg.Connection, table: str, device_id: int, pin: int) -> tuple[object, ...] | None:
    """min, max, sum and count over every bucket of one datastream's rollup ``table``."""
    return conn.execute(
        f"SELECT min(min), max(max), sum(sum), sum(count)::int FROM {table} WHERE device_id = %s AND pin = %s",
        (device_id, pin),
    ).fetchone()


def publish_values(http: httpx.Client, device: PahoDevice) -> None:
    """A string, three temperatures and one clamped to the maximum, 85."""
    token = device.info.token
    device.publish("ds/Label", "hello", qos=1)  # queued for history before the numbers
    for value in ("20.0", "20.5", "21.25"):
        device.publish("ds/Temperature", value, qos=1)
    wait_for(lambda: value_of(http, token, "v0") == "21.25", message="the last value")
    device.publish("ds/Temperature", "120")  # clamped to max
    wait_for(lambda: value_of(http, token, "v0") == "85.0", message="the clamped value")


def test_without_save_raw_values_are_latest_and_rollups_only(
    stack: StackConfig, http: httpx.Client, device: PahoDevice
) -> None:
    publish_values(http, device)
    with psycopg.connect(stack.database_url) as conn:
        wait_for(
            lambda: rollup_totals(conn, "history_minute", device.info.id, 0) == (20.0, 85.0, 146.75, 4),
            message="the minute rollups",
        )
        assert rollup_totals(conn, "history_hour", device.info.id, 0) == (20.0, 85.0, 146.75, 4)
        assert history_rows(conn, device.info.id, 0) == []  # no raw rows
        assert history_rows(conn, device.info.id, 2) == []  # a string cannot be averaged: not history
    assert value_of(http, device.info.token, "v2") == "hello"


def test_with_save_raw_every_value_is_kept_raw_as_well(
    stack: StackConfig, http: httpx.Client, transport: str, paho_device: ConnectDevice
) -> None:
    info = provision(stack.database_url, thermostat_doc(save_raw=True)).devices[0]
    device = paho_device(stack, info, transport=transport)
    wait_for(lambda: is_connected(stack, info.token), message="presence to reach the app")
    publish_values(http, device)
    with psycopg.connect(stack.database_url) as conn:
        wait_for(lambda: len(history_rows(conn, info.id, 0)) == 4, message="history rows")
        assert history_rows(conn, info.id, 0) == [(20.0, None), (20.5, None), (21.25, None), (85.0, None)]
        assert history_rows(conn, info.id, 2) == [(None, "hello")]
        assert rollup_totals(conn, "history_minute", info.id, 0) == (20.0, 85.0, 146.75, 4)


def test_string_and_location_values(http: httpx.Client, device: PahoDevice) -> None:
    token = device.info.token
    device.publish("ds/Label", "hello, world")
    device.publish("ds/Where", "24.1\x0056.9")
    wait_for(lambda: value_of(http, token, "v2") == "hello, world")
    wait_for(
        lambda: http.get(f"/external/api/get?token={token}&v3&v2").json() == {"v3": [24.1, 56.9], "v2": "hello, world"}
    )


def test_wrong_type_is_ignored_and_reported_on_diag(http: httpx.Client, device: PahoDevice) -> None:
    token = device.info.token
    device.publish("ds/Power", "1")
    wait_for(lambda: value_of(http, token, "v1") == "1")
    device.publish("ds/Power", "on")
    topic, payload = device.next(topic_prefix="downlink/diag")
    assert topic == "downlink/diag"
    assert payload.startswith(b"ds/Power: ") and b"integer" in payload
    assert value_of(http, token, "v1") == "1"


def test_unknown_datastream_is_reported_on_diag(device: PahoDevice) -> None:
    device.publish("ds/Humidity", "40")
    topic, payload = device.next(topic_prefix="downlink/diag")
    assert (
        payload == b"ds/Humidity: no datastream named 'Humidity' in template '" + device.info.template.encode() + b"'"
    )


def test_too_long_string_is_reported(device: PahoDevice) -> None:
    device.publish("ds/Label", "x" * 1000)  # fits the packet limit but not...
    device.publish("ds/Label", "é" * 500)  # 1000 bytes: accepted
    device.publish("ds/Label", b"\xff\xfe")  # not UTF-8
    _, payload = device.next(topic_prefix="downlink/diag")
    assert payload == b"ds/Label: value is not UTF-8 text"


def test_info_mcu_is_stored(stack: StackConfig, device: PahoDevice) -> None:
    info = {
        "tmpl": "TMPLabcd1234",
        "ver": "0.1.2",
        "build": "Jan 19 2024 12:25:30",
        "type": "TMPLabcd1234",
        "rxbuff": 1024,
    }
    device.publish("info/mcu", json.dumps(info), qos=1)
    with psycopg.connect(stack.database_url) as conn:

        def row() -> tuple[object, ...] | None:
            return conn.execute(
                "SELECT fw_version, fw_build, fw_type, board_template_id, rx_buffer FROM device "
                "WHERE id = %s AND fw_version IS NOT NULL",
                (device.info.id,),
            ).fetchone()

        assert wait_for(row) == ("0.1.2", "Jan 19 2024 12:25:30", "TMPLabcd1234", "TMPLabcd1234", 1024)
    device.publish("info/mcu", "not json")
    _, payload = device.next(topic_prefix="downlink/diag")
    assert payload.startswith(b"info/mcu: expected a JSON object")


def _set_from_server(http: httpx.Client, device: PahoDevice, query: str, echoes: int) -> None:
    """Write values over HTTP and consume the downlinks they cause, so the next reads are clean."""
    assert http.get(f"/external/api/batch/update?token={device.info.token}&{query}").status_code == 200
    for _ in range(echoes):
        device.next(topic_prefix="downlink/ds/")


def test_get_ds_answers_on_downlink(http: httpx.Client, device: PahoDevice) -> None:
    _set_from_server(http, device, "v0=19.5&v1=1", echoes=2)
    device.publish("get/ds", "Temperature,Power,Label")
    got = dict(device.next(topic_prefix="downlink/ds/") for _ in range(3))
    assert got == {"downlink/ds/Temperature": b"19.5", "downlink/ds/Power": b"1", "downlink/ds/Label": b"none"}


def test_get_ds_all_sends_only_sync_datastreams(http: httpx.Client, device: PahoDevice) -> None:
    _set_from_server(http, device, "v0=18.0&v1=0", echoes=2)
    device.publish("get/ds/all", "")
    device.publish("get/ds", "Nope")  # its diag comes after everything get/ds/all caused
    seen = []
    while not seen or seen[-1][0] != "downlink/diag":
        seen.append(device.next())
    assert seen == [("downlink/ds/Power", b"0"), ("downlink/diag", b"get/ds: no datastream named 'Nope'")]


def test_presence_updates_the_device_row(stack: StackConfig, device: PahoDevice) -> None:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT online, ip, keep_alive, connected_at IS NOT NULL FROM device WHERE id = %s", (device.info.id,)
        ).fetchone()
        assert row == (True, "127.0.0.1", 30, True)
        device.client.disconnect()

        def offline() -> bool:
            r = conn.execute(
                "SELECT online, disconnected_at IS NOT NULL FROM device WHERE id = %s", (device.info.id,)
            ).fetchone()
            return r == (False, True)

        wait_for(offline, message="offline presence")


def test_a_long_string_value_round_trips_through_the_app(http: httpx.Client, device: PahoDevice) -> None:
    """The app republishes values under a longer, mounted topic: its service connection must
    not be held to the devices' 1024-byte packet limit (regression)."""
    value = "y" * 1010  # fits a device packet (ds/Label), not the mounted downlink
    device.publish("ds/Label", value, qos=1)
    wait_for(lambda: value_of(http, device.info.token, "v2") == value)
    device.publish("get/ds", "Label")
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Label", value.encode())
    assert http.get("/healthz").json()["broker_connected"] is True


def _one_shot_burst(token: str) -> tuple[bytes, bytes]:
    """CONNECT (with a Last Will on ds/Label), and PUBLISH ds/Temperature 55.5 + DISCONNECT."""
    import struct

    def s(text: str) -> bytes:
        return struct.pack("!H", len(text.encode())) + text.encode()

    body = (
        s("MQTT")
        + bytes([4, 0xC6])
        + struct.pack("!H", 30)
        + s("")
        + s("ds/Label")
        + s("will")
        + s("device")
        + s(token)
    )
    publish = s("ds/Temperature") + b"55.5"
    return bytes([0x10, len(body)]) + body, bytes([0x30, len(publish)]) + publish + b"\xe0\x00"


def _send_tls_in_one_flight(port: int, cafile: str, connect: bytes, tail: bytes) -> None:
    """Like mosquitto_pub over TLS: after CONNACK, the last PUBLISH, DISCONNECT and TLS
    close_notify leave in one TCP write, so the broker reads them together with the end."""
    import socket
    import ssl

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context(cafile=cafile).wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:

        def read(n: int) -> bytes:
            while True:
                try:
                    return tls.read(n)
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    incoming.write(sock.recv(65536))

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        tls.write(connect)
        sock.sendall(outgoing.read())
        assert read(4) == b"\x20\x02\x00\x00"
        tls.write(tail)
        try:
            tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(outgoing.read())
        sock.shutdown(socket.SHUT_WR)


@pytest.mark.transports("tcp", "tls")  # raw sockets below speak TCP or TLS, not WebSocket
def test_a_one_shot_publisher_loses_nothing(
    stack: StackConfig, http: httpx.Client, transport: str, device: PahoDevice
) -> None:
    """A battery device wakes, connects, publishes QoS 0, disconnects and hangs up. Regression:
    over TLS the PUBLISH, DISCONNECT and end of stream arrive together, and the broker dropped
    the PUBLISH and took the DISCONNECT for a lost connection (publishing the Last Will)."""
    import socket

    device.client.disconnect()  # the raw client below is this device now
    device.client.loop_stop()
    connect, tail = _one_shot_burst(device.info.token)
    if transport == "tls":
        _send_tls_in_one_flight(stack.mqtts_port, str(stack.data_dir / "tls" / "ca.pem"), connect, tail)
    else:
        with socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=5) as sock:
            sock.sendall(connect)
            assert sock.recv(4) == b"\x20\x02\x00\x00"
            sock.sendall(tail)
            sock.shutdown(socket.SHUT_WR)
    wait_for(lambda: value_of(http, device.info.token, "v0") == "55.5", message="the one-shot value")
    assert value_of(http, device.info.token, "v2") == "none"  # a clean DISCONNECT: no Last Will
