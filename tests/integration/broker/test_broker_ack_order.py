"""PUBACKs leave in the order the PUBLISHes arrived ([MQTT-4.6.0-2]), for a pipelined burst.

amqtt handles each packet in a task of its own; the broker answered some publishes itself (over
the rate limit, or refused while older ones waited for a durable sink), so a later PUBACK could
overtake an earlier one. A raw socket writes the whole burst at once and reads every PUBACK.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    ManualClock,
    Raw,
    connect_packet,
    ours,
    publish_packet,
    subscribe_packet,
    token,
)

BURST = 500
SINK = "$share/app/d/+/ds/#"


async def device(harness: Harness, clients: list[Any]) -> Raw:
    raw = await Raw.open(harness.port)
    clients.append(raw)
    await raw.send(connect_packet("burst", "device", token(1)))
    assert await raw.read_packet() == b"\x20\x02\x00\x00"
    return raw


async def pubacks(raw: Raw, count: int) -> list[int]:
    """The packet ids of the next ``count`` PUBACKs (other packets, such as diag lines, skipped)."""
    ids: list[int] = []
    while len(ids) < count:
        packet = await raw.read_packet(timeout=15.0)
        if packet[0] == 0x40:
            ids.append(struct.unpack("!H", packet[2:4])[0])
    return ids


def packet_id(publish: bytes) -> int:
    """The packet id of a whole QoS 1 PUBLISH."""
    index = 1
    while publish[index] & 0x80:
        index += 1
    topic_at = index + 1
    (topic_length,) = struct.unpack("!H", publish[topic_at : topic_at + 2])
    id_at = topic_at + 2 + topic_length
    return int(struct.unpack("!H", publish[id_at : id_at + 2])[0])


def burst(topics: list[str]) -> bytes:
    """``BURST`` QoS 1 publishes, packet ids 1..BURST, cycling through ``topics``."""
    return b"".join(
        publish_packet(topics[n % len(topics)], str(n).encode(), qos=1, packet_id=n + 1) for n in range(BURST)
    )


@pytest.fixture
async def frozen_rate() -> AsyncIterator[Harness]:
    """Our broker with a rate limit of 100 publishes and a clock that never moves: the burst's
    first 100 publishes are taken, the other 400 dropped (and acknowledged: MQTT 3.1.1 has no
    negative PUBACK)."""
    async with ours(rate_clock=ManualClock(), device_rate_limit=100.0) as harness:
        yield harness


async def test_pubacks_keep_the_order_of_a_burst_that_hits_the_rate_limit(
    frozen_rate: Harness, clients: list[Any]
) -> None:
    raw = await device(frozen_rate, clients)
    await raw.send(burst(["ds/Temperature"]))
    assert await pubacks(raw, BURST) == list(range(1, BURST + 1))


@pytest.mark.parametrize("rate_limit", [100_000.0, 100.0], ids=["under-rate-limit", "over-rate-limit"])
async def test_withheld_pubacks_keep_the_order_of_the_publishes(clients: list[Any], rate_limit: float) -> None:
    """With ``sink_acks`` an uplink's PUBACK waits for the app's acknowledgement, while a refused
    publish (not an uplink topic) or one over the rate limit is answered by the broker at once:
    each waits for the PUBACKs of the publishes before it."""
    async with ours(
        rate_clock=ManualClock(), sink_acks=True, device_inflight_limit=BURST, device_rate_limit=rate_limit
    ) as harness:
        app = await Raw.open(harness.port)
        clients.append(app)
        await app.send(connect_packet("app", SERVICE_USER, SERVICE_PASSWORD, clean=False))
        assert (await app.read_packet())[3] == 0
        await app.send(subscribe_packet(1, SINK, qos=1))
        assert (await app.read_packet())[0] == 0x90
        raw = await device(harness, clients)
        await raw.send(burst(["ds/Temperature", "downlink/ds/Refused", "ds/Humidity"]))
        uplinks = len([n for n in range(min(BURST, int(rate_limit))) if n % 3 != 1])
        copies = [await app.read_packet(timeout=15.0) for _ in range(uplinks)]
        for copy in reversed(copies):  # the app acknowledges the newest first
            await app.send(b"\x40\x02" + struct.pack("!H", packet_id(copy)))
        assert await pubacks(raw, BURST) == list(range(1, BURST + 1))
