"""A device's uplinks routed as they are read (``RoutingBroker.route_uplink``, issue #16) keep
the order they were published in, also when some of them take the general path (a PUBLISH
the fast path leaves alone, or one read while older messages still wait to be routed).

Packets handled as they arrive (``FramedReader.receive``, called by the socket's stream before
anything is buffered for amqtt's reader) keep that order too, and keep the connection's
keep-alive: its reader then sees none of them."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import pytest
from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    Raw,
    connect_packet,
    ours,
    publish_packet,
    subscribe_packet,
    token,
)

from broker._framing import FramedReader
from broker._handler import MountedHandler

VALUES = 600


@pytest.fixture
async def unlimited() -> AsyncIterator[Harness]:
    """Our broker with the device rate limit out of the way of a burst."""
    async with ours(device_rate_limit=1_000_000.0) as harness:
        yield harness


async def subscriber(harness: Harness, clients: list[Any]) -> Raw:
    raw = await Raw.open(harness.port)
    clients.append(raw)
    await raw.send(connect_packet("watcher", SERVICE_USER, SERVICE_PASSWORD))
    assert (await raw.read_packet())[:4] == b"\x20\x02\x00\x00"
    await raw.send(subscribe_packet(1, "d/+/ds/#", qos=1))
    assert (await raw.read_packet())[0] == 0x90
    return raw


def topic_and_payload(publish: bytes) -> tuple[str, bytes]:
    index = 1
    while publish[index] & 0x80:
        index += 1
    at = index + 1
    (length,) = struct.unpack("!H", publish[at : at + 2])
    topic = publish[at + 2 : at + 2 + length].decode()
    rest = publish[at + 2 + length :]
    return topic, rest[2:] if (publish[0] >> 1) & 3 else rest


async def test_a_burst_right_behind_connect_arrives_in_order(unlimited: Harness, clients: list[Any]) -> None:
    """CONNECT and 600 uplinks in one write, QoS 0 and 1 mixed, with a refused topic every
    50th: the device's presence is queued at connect, so the first values take the general
    path and the rest the fast one once nothing older waits; the subscriber gets every value
    in order, and the device a diag line for each refused one."""
    core = unlimited.broker._core
    routed = core.route_uplink
    results: list[tuple[str, bool]] = []

    def recording(*args: Any) -> bool:
        taken = bool(routed(*args))
        results.append((args[2], taken))
        return taken

    watcher = await subscriber(unlimited, clients)
    with mock.patch.object(core, "_route_uplink_bound", recording):  # taken at connect: patched first
        device = await Raw.open(unlimited.port)
        clients.append(device)
        burst = [connect_packet("burst", "device", token(1))]
        for n in range(VALUES):
            if n % 50 == 25:
                burst.append(publish_packet("not/an/uplink", b"x"))
            burst.append(publish_packet("ds/Temperature", str(n).encode(), qos=n % 2, packet_id=n + 1))
        await device.send(b"".join(burst))
        values: list[int] = []
        while len(values) < VALUES:
            topic, payload = topic_and_payload(await watcher.read_packet(timeout=15.0))
            assert topic == "d/1/ds/Temperature", topic
            values.append(int(payload))
    assert values == list(range(VALUES))
    assert any(taken for _, taken in results), "no uplink took the fast path"
    assert not any(taken for topic, taken in results if topic != "ds/Temperature")
    diags = 0
    while diags < VALUES // 50:  # the refused ones were told (general path), besides the PUBACKs
        packet = await device.read_packet(timeout=15.0)
        if packet[0] >> 4 == 3:
            assert topic_and_payload(packet) == (
                "downlink/diag",
                b'publish to "not/an/uplink" refused: not a Blynk uplink topic',
            )
            diags += 1


def recording_receive(taken: list[int]) -> Any:
    """``FramedReader.receive`` that also notes how many bytes each call took."""
    receive = FramedReader.receive

    def recorded(self: FramedReader, data: bytes) -> bytes:
        rest = receive(self, data)
        taken.append(len(data) - len(rest))
        return rest

    return recorded


async def test_packets_written_one_at_a_time_are_handled_as_they_arrive(unlimited: Harness, clients: list[Any]) -> None:
    """After CONNACK, each PUBLISH written on its own is taken as it arrives, and a SUBSCRIBE
    in the middle keeps its place: the values on both sides of it arrive in order, and the
    device receives what it subscribed to."""
    taken: list[int] = []
    watcher = await subscriber(unlimited, clients)
    with mock.patch.object(FramedReader, "receive", recording_receive(taken)):  # bound at connect
        device = await Raw.open(unlimited.port)
        clients.append(device)
        await device.send(connect_packet("one-by-one", "device", token(1)))
        assert (await device.read_packet())[:4] == b"\x20\x02\x00\x00"
        for n in range(40):
            if n == 20:
                await device.send(subscribe_packet(7, "downlink/#", qos=0))
            await device.send(publish_packet("ds/Temperature", str(n).encode(), qos=1, packet_id=n + 1))
            await asyncio.sleep(0.005)
        values: list[int] = []
        while len(values) < 40:
            topic, payload = topic_and_payload(await watcher.read_packet(timeout=15.0))
            assert topic == "d/1/ds/Temperature", topic
            values.append(int(payload))
        acks: list[int] = []
        while len(acks) < 40:  # PUBACKs in order, the SUBACK among them
            packet = await device.read_packet(timeout=15.0)
            if packet[0] == 0x40:
                acks.append(int.from_bytes(packet[2:4], "big"))
            else:
                assert packet == b"\x90\x03\x00\x07\x00", packet
    assert values == list(range(40))
    assert acks == list(range(1, 41))
    assert sum(taken) >= 30 * len(publish_packet("ds/Temperature", b"10", qos=1)), taken


async def test_a_client_whose_packets_are_all_taken_as_they_arrive_keeps_its_keepalive(
    clients: list[Any],
) -> None:
    """A device with a keep-alive of 1 s publishing at QoS 0 every 0.3 s for 3 s stays
    connected: its reader, waiting all that time for a packet the stream never gave it, counts
    the packets taken meanwhile. Once it goes silent it is disconnected as before."""
    taken: list[int] = []
    async with ours(device_rate_limit=1_000.0) as harness:
        watcher = await subscriber(harness, clients)
        with mock.patch.object(FramedReader, "receive", recording_receive(taken)):
            device = await Raw.open(harness.port)
            clients.append(device)
            await device.send(connect_packet("steady", "device", token(2), keepalive=1))
            assert (await device.read_packet())[:4] == b"\x20\x02\x00\x00"
            for n in range(10):
                await device.send(publish_packet("ds/Temperature", str(n).encode()))
                await asyncio.sleep(0.3)
            values = []
            while len(values) < 10:
                topic, payload = topic_and_payload(await watcher.read_packet(timeout=5.0))
                assert topic == "d/2/ds/Temperature", topic
                values.append(int(payload))
            assert values == list(range(10))
            assert sum(taken) == 10 * len(publish_packet("ds/Temperature", b"0")), taken
            assert not await device.closed_by_peer(timeout=0.5)  # still connected after 3.5 s
            assert await device.closed_by_peer(timeout=5.0)  # silent: 1.5 s of grace, then closed


async def test_a_plain_subscribe_is_queued_as_it_arrives_and_an_odd_one_goes_to_amqtt(
    unlimited: Harness, clients: list[Any]
) -> None:
    """A plainly well-formed SUBSCRIBE is read by the broker itself (``subscribe_request``) and
    queued for the connection's message loop, without amqtt's decoder or its task per packet:
    SUBACK, then the downlinks it asked for. One the broker's reader leaves alone (a QoS byte
    of 3) still reaches amqtt's ``handle_subscribe`` and is refused there (0x80)."""
    handled: list[object] = []
    handle_subscribe = MountedHandler.handle_subscribe

    async def counting(self: MountedHandler, packet: Any) -> None:
        handled.append(packet)
        await handle_subscribe(self, packet)

    watcher = await subscriber(unlimited, clients)
    with mock.patch.object(MountedHandler, "handle_subscribe", counting):
        device = await Raw.open(unlimited.port)
        clients.append(device)
        await device.send(connect_packet("subscriber", "device", token(3)))
        assert (await device.read_packet())[:4] == b"\x20\x02\x00\x00"
        await device.send(subscribe_packet(5, "downlink/ds/Power", "downlink/ds/Mode", qos=1))
        assert await device.read_packet() == b"\x90\x04\x00\x05\x01\x01"
        await watcher.send(publish_packet("d/3/downlink/ds/Power", b"1"))
        downlink = await device.read_packet()
        assert downlink[0] >> 4 == 3 and downlink.endswith(b"downlink/ds/Power1"), downlink
        assert handled == []
        await device.send(subscribe_packet(6, "downlink/ds/Other", qos=3))
        assert await device.read_packet() == b"\x90\x03\x00\x06\x80"
        assert len(handled) == 1
