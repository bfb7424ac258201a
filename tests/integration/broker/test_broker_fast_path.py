"""A device's uplinks routed as they are read (``RoutingBroker.route_uplink``, issue #16) keep
the order they were published in, also when some of them take the general path (a PUBLISH
the fast path leaves alone, or one read while older messages still wait to be routed)."""

from __future__ import annotations

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
    with mock.patch.object(core, "route_uplink", recording):  # bound at connect: patched first
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
