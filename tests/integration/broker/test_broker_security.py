"""Attacks on the MQTT listener: each one is survived, and a well-behaved device is served after it.

What the neighbouring files already cover is not repeated here: hypothesis-driven mutation of
whole sessions (test_fuzz.py), oversized packets, garbage before CONNECT, truncated packets while
others talk, ``$SYS`` publishes (test_broker_robustness.py), the publish rate limit and login
throttle (test_broker_limits.py), a will on a non-uplink topic (test_broker_routing.py).
This file adds: seeded random bytes right after a good CONNECT, broken remaining lengths, bad
PUBLISH topics (NUL, invalid UTF-8, wildcards, oversized), wills aimed at another device, huge
SUBSCRIBE packets, the per-session subscription cap and the rate limit on SUBSCRIBE/UNSUBSCRIBE.
Malformed packets go over raw sockets; well-formed clients are paho.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _broker_harness import (
    RATE_DIAG,
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    Paho,
    Raw,
    connect_packet,
    eventually,
    offline_reason,
    packet,
    parse_publish,
    presence_watcher,
    publish_packet,
    running,
    subscribe_packet,
    token,
)

from broker import MqttBroker

CAP = 64  # BrokerSettings.max_subscriptions default
SERVICE_CAP = 10_000  # BrokerSettings.service_max_subscriptions default
CAP_DIAG = "subscribe refused for {} filter(s): at most {} subscriptions per device"
_check_ids = itertools.count()


async def assert_serves_a_good_device(paho: Callable[..., Paho], device_id: int = 9) -> None:
    """A fresh device subscribes, publishes and receives a downlink; the platform sees its uplink."""
    backend = await paho(
        client_id=f"check-{next(_check_ids)}", username=SERVICE_USER, password=SERVICE_PASSWORD
    ).connect()
    assert await backend.subscribe(f"d/{device_id}/ds/#", qos=1) == [1]
    device = await paho(username="device", password=token(device_id)).connect()
    assert await device.subscribe("downlink/ds/#", qos=1) == [1]
    await device.publish("ds/Alive", b"1", qos=1)
    assert (await backend.received(f"d/{device_id}/ds/Alive")).payload == b"1"
    await backend.publish(f"d/{device_id}/downlink/ds/Power", b"on", qos=1)
    assert (await device.received("downlink/ds/Power")).payload == b"on"
    await device.close()
    await backend.close()


async def raw_device(harness: Harness, clients: list[Any], device_id: int, keepalive: int = 60) -> Raw:
    client = await Raw.open(harness.port)
    clients.append(client)
    await client.send(connect_packet(username="device", password=token(device_id), keepalive=keepalive))
    assert await client.read_packet() == b"\x20\x02\x00\x00"
    return client


def suback_codes(data: bytes) -> tuple[int, list[int]]:
    """Packet id and return codes of a SUBACK read by :meth:`Raw.read_packet`."""
    assert data[0] == 0x90, data[:8]
    index = 1
    while data[index] & 0x80:
        index += 1
    body = data[index + 1 :]
    return struct.unpack("!H", body[:2])[0], list(body[2:])


async def read_acks(client: Raw, count: int, kind: int, diags_wanted: int = 0) -> tuple[list[bytes], list[str]]:
    """Read until ``count`` packets of type ``kind`` (first byte) and ``diags_wanted`` diag lines
    arrived (in any order); returns both."""
    acks: list[bytes] = []
    diags: list[str] = []
    while len(acks) < count or len(diags) < diags_wanted:
        data = await client.read_packet(timeout=10)
        if data[0] == kind:
            acks.append(data)
        else:
            topic, payload = parse_publish(data)
            assert topic == "downlink/diag", topic
            diags.append(payload.decode())
    return acks, diags


def device_filters(harness: Harness, device_id: int) -> dict[str, int]:
    broker: MqttBroker = harness.broker
    core = broker._core  # test hook: the subscriptions the broker really holds
    assert core is not None
    session = core._sessions[f"dev:{device_id}"][0]
    return core.index.filters_of(session)


# ---- random bytes and broken framing --------------------------------------------------------


async def test_seeded_random_bytes_after_connect_end_only_those_connections(clients: list[Any]) -> None:
    """24 devices (3 waves of 8) send random bytes after CONNACK; each connection is ended by the
    broker (at the latest by keep-alive, 1.5 s), none survives, and the broker serves others."""
    rng = random.Random(20261206)
    async with running(clients) as (harness, paho):
        watcher = await presence_watcher(paho)
        for _wave in range(3):
            victims = [await raw_device(harness, clients, device_id, keepalive=1) for device_id in range(1, 9)]
            for victim in victims:
                await victim.send(rng.randbytes(rng.randint(1, 300)))
            closed = await asyncio.gather(*(victim.closed_by_peer(timeout=6) for victim in victims))
            assert closed == [True] * 8
        await eventually(lambda: harness.broker.connected_devices() == set(), message="every victim gone")
        await eventually(lambda: harness.broker.open_connections() == 1, message="only the watcher's socket left")
        await assert_serves_a_good_device(paho)
        assert watcher.connack == "Success" and not watcher.disconnected


BROKEN_LENGTHS = {
    # name: (bytes sent after CONNACK, offline reason)
    "five_byte_varint": (b"\x30\xff\xff\xff\xff\x01", "protocol_error"),
    "endless_varint": (b"\x30" + b"\x80" * 12, "protocol_error"),
    "largest_varint": (b"\x30\xff\xff\xff\x7f", "packet_too_large"),
    "above_packet_limit": (b"\x30\x81\x08" + b"x" * 16, "packet_too_large"),
    "topic_longer_than_packet": (b"\x30\x0a\x00\xc8ds/T1234", "protocol_error"),
    "subscribe_filter_longer_than_packet": (b"\x82\x07\x00\x01\x00\xffdow", "protocol_error"),
    "unsubscribe_filter_longer_than_packet": (b"\xa2\x07\x00\x01\x00\xffdow", "protocol_error"),
    "declared_longer_than_sent": (b"\x30\x64\x00\x04ds/T", "keepalive_timeout"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_LENGTHS))
async def test_broken_remaining_length_ends_only_that_client(clients: list[Any], name: str) -> None:
    data, reason = BROKEN_LENGTHS[name]
    async with running(clients) as (harness, paho):
        watcher = await presence_watcher(paho)
        victim = await raw_device(harness, clients, 1, keepalive=1)
        await victim.send(data)
        assert await victim.closed_by_peer(timeout=6)
        assert await offline_reason(watcher, 1, timeout=6) == reason
        await assert_serves_a_good_device(paho)


async def test_truncated_packet_then_end_of_stream(clients: list[Any]) -> None:
    async with running(clients) as (harness, paho):
        watcher = await presence_watcher(paho)
        await watcher.subscribe("d/1/#", qos=1)
        victim = await raw_device(harness, clients, 1)
        victim.writer.write(publish_packet("ds/Cut", b"12345")[:-3])
        victim.writer.write_eof()
        assert await victim.closed_by_peer()
        assert await offline_reason(watcher, 1) == "connection_lost"
        assert "d/1/ds/Cut" not in watcher.topics()
        await assert_serves_a_good_device(paho)


# ---- bad PUBLISH topics ------------------------------------------------------------------------


def raw_publish(topic: bytes, payload: bytes = b"1") -> bytes:
    return packet(0x30, struct.pack("!H", len(topic)) + topic + payload)


BAD_TOPICS = {
    # name: (PUBLISH packet, offline reason)
    "nul": (raw_publish(b"ds/T\x00emp"), "protocol_error"),
    "invalid_utf8": (raw_publish(b"ds/\xff\xfe"), "protocol_error"),
    "utf8_surrogate": (raw_publish(b"ds/\xed\xa0\x80"), "protocol_error"),
    "plus_wildcard": (raw_publish(b"ds/+"), "protocol_error"),
    "hash_wildcard": (raw_publish(b"ds/#"), "protocol_error"),
    "empty": (raw_publish(b""), "protocol_error"),
    "oversized": (raw_publish(b"ds/" + b"x" * 2000), "packet_too_large"),
    "topic_length_65535": (
        raw_publish(b"ds/" + b"x" * 1000)[:3] + b"\xff\xff" + b"ds/" + b"x" * 1000 + b"1",
        "protocol_error",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_TOPICS))
async def test_bad_publish_topic_closes_the_client_and_reaches_nobody(clients: list[Any], name: str) -> None:
    data, reason = BAD_TOPICS[name]
    async with running(clients) as (harness, paho):
        watcher = await presence_watcher(paho)
        await watcher.subscribe("#", qos=1)
        victim = await raw_device(harness, clients, 1)
        await victim.send(data)
        assert await victim.closed_by_peer()
        assert await offline_reason(watcher, 1) == reason
        await watcher.publish("d/1/ds/Marker", b"1", qos=1)  # broadcasts are FIFO: a leak would come first
        await watcher.received("d/1/ds/Marker")
        assert set(watcher.topics()) == {"sys/presence/1", "d/1/ds/Marker"}
        await assert_serves_a_good_device(paho)


def test_bad_topic_packets_are_what_their_names_say() -> None:
    """Keeps the hand-made packets honest: everything but the oversized one fits 1024 bytes."""
    for name, (data, _) in BAD_TOPICS.items():
        assert (len(data) > 1024) == (name == "oversized"), name
    length = BAD_TOPICS["topic_length_65535"][0]
    assert length[3:5] == b"\xff\xff" and len(length) < 1100


# ---- wills aimed at another device --------------------------------------------------------------


FOREIGN_WILLS = [
    "../d/2/ds/Power",
    "d/2/ds/Power",
    "d/2/downlink/ds/Power",
    "/d/2/downlink/ds/Power",
    "downlink/ds/Power",
    "$SYS/broker/uptime",
    "sys/presence/2",
    "ds/+",
    "ds/#",
    "ds/Power\x00",
]


@pytest.mark.parametrize("will_topic", FOREIGN_WILLS)
async def test_a_will_cannot_reach_another_device(clients: list[Any], will_topic: str) -> None:
    async with running(clients) as (harness, paho):
        watcher = await presence_watcher(paho)
        await watcher.subscribe("#", qos=1)
        victim = await paho(username="device", password=token(2)).connect()
        assert await victim.subscribe("downlink/#", qos=1) == [1]
        attacker = await Raw.open(harness.port)
        clients.append(attacker)
        await attacker.send(connect_packet(username="device", password=token(1), will=(will_topic, b"pwned")))
        assert await attacker.read_packet() == b"\x20\x02\x00\x00"
        await attacker.send(publish_packet("ds/Before", b"1"))
        attacker.writer.transport.abort()  # ungraceful: the will would be published now
        assert await offline_reason(watcher, 1) == "connection_lost"
        await watcher.publish("d/2/downlink/ds/Marker", b"1", qos=1)  # FIFO: a will would come first
        await victim.received("downlink/ds/Marker")
        assert victim.topics() == ["downlink/ds/Marker"]
        assert not any(m.payload == b"pwned" for m in list(watcher.messages))
        await assert_serves_a_good_device(paho)


# ---- huge SUBSCRIBE packets --------------------------------------------------------------------


def short_filters(count: int) -> list[str]:
    return [f"downlink/{n}" for n in range(count)]


async def test_10000_filters_in_one_subscribe_exceed_the_device_packet_limit(clients: list[Any]) -> None:
    async with running(clients) as (harness, paho):
        watcher = await presence_watcher(paho)
        victim = await raw_device(harness, clients, 1)
        data = subscribe_packet(1, *short_filters(10_000))
        assert len(data) > 100_000
        await victim.send(data)
        assert await victim.closed_by_peer()
        assert await offline_reason(watcher, 1) == "packet_too_large"
        assert len(harness.broker._core.index) == 1  # the watcher's filter only
        await assert_serves_a_good_device(paho)


async def test_a_full_1024_byte_subscribe_is_capped(clients: list[Any]) -> None:
    """As many filters as fit in one device-sized SUBSCRIBE (more than the cap of 64)."""
    fits = itertools.takewhile(lambda n: len(subscribe_packet(1, *short_filters(n))) <= 1 + 2 + 1024, range(1, 200))
    count = max(fits)
    async with running(clients) as (harness, paho):
        victim = await raw_device(harness, clients, 1)
        await victim.send(subscribe_packet(7, *short_filters(count), qos=1))
        (suback,), diags = await read_acks(victim, 1, 0x90, diags_wanted=1)
        assert count > CAP
        assert suback_codes(suback) == (7, [1] * CAP + [0x80] * (count - CAP))
        assert diags == [CAP_DIAG.format(count - CAP, CAP)]
        assert len(device_filters(harness, 1)) == CAP
        await assert_serves_a_good_device(paho)


async def test_10000_filters_in_one_service_sized_subscribe_build_only_the_cap(clients: list[Any]) -> None:
    """A device allowed service-sized packets (1 MiB) sends 10,000 filters in one SUBSCRIBE."""
    async with running(clients, max_packet_size=1_048_576) as (harness, paho):
        device = await paho(username="device", password=token(1)).connect()
        codes = await device.subscribe(*short_filters(10_000), qos=1)
        assert codes == [1] * CAP + [0x80] * (10_000 - CAP)
        diag = await device.received("downlink/diag")
        assert diag.payload.decode() == CAP_DIAG.format(10_000 - CAP, CAP)
        assert sorted(device_filters(harness, 1)) == sorted(f"d/1/{f}" for f in short_filters(CAP))
        assert len(harness.broker._core.index) == CAP
        await assert_serves_a_good_device(paho)
        assert device.connack == "Success" and not device.disconnected


async def test_the_service_login_is_capped_far_above_what_the_app_needs(clients: list[Any]) -> None:
    """The service login keeps its 1 MiB packets and gets a cap of its own (the app uses ~10)."""
    async with running(clients) as (harness, paho):
        service = await paho(client_id="svc", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
        app_filters = [
            "d/+/ds/#",
            "d/+/info/mcu",
            "d/+/get/#",
            "d/+/batch_ds",
            "d/+/event/#",
            "d/+/meta/#",
            "d/+/ota/status",
            "sys/presence/+",
            "sys/vitals/+",
            "sys/ping/+",
        ]
        assert await service.subscribe(*app_filters, qos=1) == [1] * len(app_filters)
        many = [f"x/{n}" for n in range(12_000)]
        codes = await service.subscribe(*many, qos=1)  # 12,000 filters in one SUBSCRIBE (about 80 KB)
        granted = SERVICE_CAP - len(app_filters)
        assert codes == [1] * granted + [0x80] * (12_000 - granted)
        assert len(harness.broker._core.index) == SERVICE_CAP
        assert await service.subscribe(*app_filters, qos=0) == [0] * len(app_filters)  # held: no new room needed
        await assert_serves_a_good_device(paho)


# ---- the per-session cap over many packets ------------------------------------------------------


async def test_20000_filters_over_many_subscribes_are_capped_with_diag(clients: list[Any]) -> None:
    filters = [f"downlink/ds/f{n}" for n in range(20_000)]
    async with running(clients, device_rate_limit=100_000.0) as (harness, paho):  # the cap, not the rate
        device = await paho(username="device", password=token(1)).connect()
        mids = [device.client.subscribe([(f, 1) for f in filters[i : i + 40]])[1] for i in range(0, 20_000, 40)]
        await eventually(lambda: all(mid in device.subacks for mid in mids), timeout=30, message="every SUBACK")
        codes = [code for mid in mids for code in device.subacks[mid]]
        assert codes == [1] * CAP + [0x80] * (20_000 - CAP)
        await eventually(
            lambda: device.topics().count("downlink/diag") == len(mids) - 1,
            timeout=10,
            message="a diag per capped SUBSCRIBE",
        )
        diags = [m.payload.decode() for m in list(device.messages) if m.topic == "downlink/diag"]
        assert diags[0] == CAP_DIAG.format(40 - CAP % 40, CAP) and set(diags[1:]) == {CAP_DIAG.format(40, CAP)}
        assert len(device_filters(harness, 1)) == CAP
        # re-subscribing held filters does not count twice; unsubscribing frees room
        assert await device.subscribe(filters[0], filters[CAP - 1], qos=0) == [0, 0]
        assert await device.subscribe(filters[CAP], qos=1) == [0x80]
        await device.unsubscribe(filters[0])
        assert await device.subscribe(filters[CAP], filters[CAP + 1], qos=1) == [1, 0x80]
        assert len(device_filters(harness, 1)) == CAP
        await assert_serves_a_good_device(paho)
        assert not device.disconnected


async def test_a_reconnected_device_starts_with_an_empty_allowance(clients: list[Any]) -> None:
    async with running(clients) as (harness, paho):
        first = await paho(username="device", password=token(1)).connect()
        assert await first.subscribe(*short_filters(CAP), qos=0) == [0] * CAP
        await first.close()
        await eventually(lambda: harness.broker.connected_devices() == set(), message="first gone")
        second = await paho(username="device", password=token(1)).connect()
        assert await second.subscribe(*short_filters(CAP)[::-1], qos=1) == [1] * CAP


# ---- the rate limit counts SUBSCRIBE and UNSUBSCRIBE ---------------------------------------------


async def test_subscribes_over_the_rate_limit_get_0x80_and_a_diag(clients: list[Any]) -> None:
    async with running(clients, device_rate_limit=5.0) as (harness, paho):
        device = await raw_device(harness, clients, 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await device.send(b"".join(subscribe_packet(n, f"downlink/ds/S{n}") for n in range(1, 21)))
        subacks, diags = await read_acks(device, 20, 0x90, diags_wanted=1)
        elapsed = loop.time() - started
        codes = dict(suback_codes(s) for s in subacks)
        assert sorted(codes) == list(range(1, 21))
        granted = [n for n, c in codes.items() if c == [0]]
        assert set(granted) | {n for n, c in codes.items() if c == [0x80]} == set(range(1, 21))
        assert 5 <= len(granted) <= 5 + 5 * elapsed + 1 < 20
        assert set(diags) == {RATE_DIAG.format(5)}
        assert sorted(device_filters(harness, 1)) == sorted(f"d/1/downlink/ds/S{n}" for n in granted)
        await assert_serves_a_good_device(paho)


async def test_unsubscribes_over_the_rate_limit_are_answered_and_counted(clients: list[Any]) -> None:
    async with running(clients, device_rate_limit=5.0) as (harness, paho):
        device = await raw_device(harness, clients, 1)
        unsubscribe = b"".join(
            packet(0xA2, struct.pack("!H", n) + struct.pack("!H", 9) + b"downlink/") for n in range(1, 21)
        )
        await device.send(unsubscribe)
        unsubacks, diags = await read_acks(device, 20, 0xB0, diags_wanted=1)
        assert sorted(u[2:4] for u in unsubacks) == sorted(struct.pack("!H", n) for n in range(1, 21))
        assert set(diags) == {RATE_DIAG.format(5)}
        # the bucket is empty now: a SUBSCRIBE right after is refused too
        await device.send(subscribe_packet(99, "downlink/ds/Late"))
        (suback,), _ = await read_acks(device, 1, 0x90)
        assert suback_codes(suback) == (99, [0x80])
        await assert_serves_a_good_device(paho)


class SubscribeFlooder(threading.Thread):
    """A device on a blocking socket in its own thread, sending SUBSCRIBE packets as fast as TCP allows."""

    def __init__(self, port: int, device_id: int) -> None:
        super().__init__(daemon=True)
        self.port, self.device_id = port, device_id
        self.sock = socket.socket()
        self.stop = threading.Event()
        self.connack = b""
        self.closed_by_broker = False

    def run(self) -> None:
        chunk = b"".join(subscribe_packet(n, f"downlink/ds/F{n % 50}") for n in range(1, 201))
        try:
            self.sock.settimeout(5)
            self.sock.connect(("127.0.0.1", self.port))
            self.sock.sendall(connect_packet(username="device", password=token(self.device_id)))
            self.connack = self.sock.recv(4)
            self.sock.setblocking(False)  # read what comes back, so the broker's writes never block
            while not self.stop.is_set():
                with contextlib.suppress(BlockingIOError):
                    if self.sock.recv(65536) == b"":
                        raise ConnectionResetError
                self.sock.setblocking(True)
                self.sock.sendall(chunk)
                self.sock.setblocking(False)
        except OSError:
            self.closed_by_broker = True

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        self.sock.close()


async def test_a_subscribe_flood_for_long_is_disconnected(clients: list[Any]) -> None:
    async with running(clients, device_rate_limit=10.0, rate_abuse_seconds=0.5) as (harness, paho):
        watcher = await presence_watcher(paho)
        flooder = SubscribeFlooder(harness.port, 1)
        flooder.start()
        try:
            assert await offline_reason(watcher, 1, timeout=10) == "rate_limited"
            await eventually(lambda: not flooder.is_alive(), timeout=10, message="flooder sees the close")
            assert flooder.connack == b"\x20\x02\x00\x00" and flooder.closed_by_broker
        finally:
            flooder.close()
        assert harness.broker.connected_devices() == set()
        await assert_serves_a_good_device(paho)
