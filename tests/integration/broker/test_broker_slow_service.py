"""A service client that stops reading, then reads again, gets what the broker kept for it.

README "Broker memory" once reported a service consumer that, after a 50,000-message burst,
"received 28 messages and nothing more within 3 s". The broker was not at fault: the benchmark
had shrunk the consumer's receive buffer to 4 KB, below loopback's segment size (64 KB), so once
the window was closed the receiver never announced enough room for a segment again and the
broker's kernel sent only on its zero-window probes, whose interval doubles. With an ordinary
receive buffer a persistent session gets all of the burst (from its backlog) once it reads
again; a clean one is disconnected as a slow consumer past its outgoing bound (QoS 1 to a clean
session is best effort).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Raw,
    connect_packet,
    eventually,
    ours,
    publish_packet,
    subscribe_packet,
)

TOPIC = "d/1/downlink/ds/Power"
BOUND, BURST = 50, 500


async def service(port: int, clients: list[Any], client_id: str, clean: bool = True) -> Raw:
    raw = await Raw.open(port)
    clients.append(raw)
    await raw.send(connect_packet(client_id, SERVICE_USER, SERVICE_PASSWORD, clean=clean))
    assert (await raw.read_packet())[3] == 0
    return raw


def packet_id(publish: bytes) -> bytes:
    """The packet id bytes of a QoS 1 PUBLISH read whole."""
    at = 1
    while publish[at] & 0x80:  # the remaining length's bytes
        at += 1
    topic_length = int.from_bytes(publish[at + 1 : at + 3])
    return publish[at + 3 + topic_length : at + 5 + topic_length]


async def stalled_burst(clients: list[Any], clean: bool) -> tuple[int, bool]:
    """A consumer stops reading, takes a burst past its bound, reads again: (messages, closed)."""
    async with ours(service_max_outgoing_queue=BOUND) as harness:
        slow = await service(harness.port, clients, "slow", clean)
        await slow.send(subscribe_packet(1, TOPIC, qos=1))
        await slow.read_packet()
        slow.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131_072)
        slow.writer.transport.pause_reading()  # type: ignore[attr-defined]
        publisher = await service(harness.port, clients, "publisher")
        for n in range(BURST):
            await publisher.send(publish_packet(TOPIC, b"x" * 256, qos=1, packet_id=n + 1))
        for _ in range(BURST):
            await publisher.read_packet(timeout=30)
        queues = harness.broker.session_queues
        await eventually(lambda: queues()["svc:publisher"].incoming == 0, message="the whole burst routed")
        slow.writer.transport.resume_reading()  # type: ignore[attr-defined]
        received, closed = 0, False
        while True:
            try:
                data = await slow.read_packet(timeout=5)
            except TimeoutError:
                break
            except (asyncio.IncompleteReadError, ConnectionError):
                closed = True
                break
            if data[0] >> 4 == 3:
                received += 1
                with contextlib.suppress(ConnectionError):
                    await slow.send(b"\x40\x02" + packet_id(data))
        return received, closed


async def test_a_clean_consumer_is_disconnected_past_its_bound(clients: list[Any]) -> None:
    """Best effort: what was on its way when the broker gave up on it may be lost too."""
    received, closed = await stalled_burst(clients, clean=True)
    assert closed and received <= BOUND


async def test_a_persistent_consumer_gets_the_whole_burst(clients: list[Any]) -> None:
    assert await stalled_burst(clients, clean=False) == (BURST, False)
