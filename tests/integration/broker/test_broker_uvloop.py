"""The broker on uvloop, the event loop ``openblynk broker`` runs it on (``backend/cli.py``).

The rest of the broker tests run on asyncio's own loop (pytest-asyncio's); these run the same
broker in a uvloop ``asyncio.Runner`` of their own, so that what differs between the two loops
(uvloop's own ``Server`` class, its transports under the batched writer and the framed
reader's fast path) is exercised where the broker really runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import uvloop
from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Raw,
    connect_packet,
    ours,
    parse_publish,
    publish_packet,
    subscribe_packet,
    token,
)

VALUES = 200


def on_uvloop(test: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(test(), 60))


def test_pipelined_qos1_values_are_acknowledged_and_delivered_in_order_on_uvloop() -> None:
    """200 QoS 1 values written at once (all buffered: the reader's fast path): every one gets
    its PUBACK, and the persistent service subscriber receives every one, in order."""

    async def run() -> None:
        async with ours(device_rate_limit=100_000) as h:
            service = await Raw.open(h.port)
            await service.send(connect_packet("ingest", SERVICE_USER, SERVICE_PASSWORD, clean=False))
            assert await service.read_packet() == b"\x20\x02\x00\x00"
            await service.send(subscribe_packet(1, "d/+/ds/#", qos=1))
            assert (await service.read_packet())[0] == 0x90
            device = await Raw.open(h.port)
            await device.send(connect_packet("sensor", "device", token(3)))
            assert await device.read_packet() == b"\x20\x02\x00\x00"

            await device.send(
                b"".join(publish_packet("ds/Temperature", str(n).encode(), 1, n + 1) for n in range(VALUES))
            )

            acks = [await device.read_packet() for _ in range(VALUES)]
            # the set, not the order: amqtt acknowledges from a task per packet, so PUBACKs can
            # leave out of order (asyncio's loop too; noted for issue #15's acknowledgement work)
            assert sorted(acks) == [b"\x40\x02" + (n + 1).to_bytes(2, "big") for n in range(VALUES)]
            received = []
            for _ in range(VALUES):
                message = await service.read_packet()
                received.append(parse_publish(message)[:2])
                packet_id = message[4 + len("d/3/ds/Temperature") : 6 + len("d/3/ds/Temperature")]
                await service.send(b"\x40\x02" + packet_id)
            assert received == [("d/3/ds/Temperature", str(n).encode()) for n in range(VALUES)]
            for client in (device, service):
                await client.close()

    on_uvloop(run)


def test_a_client_that_sends_nothing_is_disconnected_at_its_keepalive_on_uvloop() -> None:
    """Keep-alive (1 s x grace) still ends a silent connection when packets take the fast path."""

    async def run() -> None:
        async with ours() as h:
            device = await Raw.open(h.port)
            await device.send(connect_packet("quiet", "device", token(4), keepalive=1))
            assert await device.read_packet() == b"\x20\x02\x00\x00"
            await device.send(publish_packet("ds/Temperature", b"1"))  # a packet, then silence
            async with asyncio.timeout(10):
                assert await device.reader.read() == b""  # the broker closed the connection
            await device.close()

    on_uvloop(run)
