"""QoS 1/2 delivery to a persistent service session is at-least-once across reconnects.

The backend's ingest is such a session. Stock amqtt 0.12.1 discarded a message 5 s after
sending it without a PUBACK, discarded every unacknowledged message when the connection ended,
and cancelled deliveries that had not started: an app restart lost what was in flight (seen as
a flaky "stopping the app ingests what it already received" test). The subscriber here is a
raw socket, so the test decides exactly which PUBLISH gets acknowledged, and sees DUP flags.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    Paho,
    Raw,
    connect_packet,
    eventually,
    ours,
    packet,
    subscribe_packet,
    token,
)

from broker import MqttBroker

CLIENT_ID = "ingest"


class Subscriber:
    """A persistent service session on a raw socket that acknowledges only when told to."""

    def __init__(self, harness: Harness, clients: list[Any]) -> None:
        self.harness = harness
        self.clients = clients
        self.raw: Raw | None = None

    async def connect(self, subscribe: str | None = None, qos: int = 1) -> Subscriber:
        self.raw = await Raw.open(self.harness.port)
        self.clients.append(self.raw)
        await self.raw.send(connect_packet(CLIENT_ID, SERVICE_USER, SERVICE_PASSWORD, clean=False))
        connack = await self.raw.read_packet()
        assert connack[:2] == b"\x20\x02" and connack[3] == 0, connack
        if subscribe is not None:
            await self.raw.send(subscribe_packet(1, subscribe, qos=qos))
            assert (await self.raw.read_packet())[0] == 0x90
        return self

    async def publish(self) -> tuple[int, bool, int | None, bytes]:
        """The next PUBLISH: (QoS, DUP, packet id, payload)."""
        assert self.raw is not None
        data = await self.raw.read_packet(timeout=5)
        assert data[0] >> 4 == 3, data
        qos, dup = (data[0] >> 1) & 3, bool(data[0] & 0x08)
        body = _body(data)
        topic_length = struct.unpack("!H", body[:2])[0]
        rest = body[2 + topic_length :]
        packet_id = struct.unpack("!H", rest[:2])[0] if qos else None
        return qos, dup, packet_id, rest[2:] if qos else rest

    async def receive(self, count: int) -> list[tuple[int, bool, int | None, bytes]]:
        return [await self.publish() for _ in range(count)]

    async def ack(self, packet_id: int | None) -> None:
        assert self.raw is not None and packet_id is not None
        await self.raw.send(b"\x40\x02" + struct.pack("!H", packet_id))

    async def disconnect(self) -> None:
        """DISCONNECT, and wait until the broker has ended the connection: a message routed
        before that goes to it (in flight, sent again after a reconnect), not to the backlog."""
        assert self.raw is not None
        await self.raw.send(b"\xe0\x00")
        await self.raw.close()
        await eventually(
            lambda: f"svc:{CLIENT_ID}" not in self.harness.broker._core.connections, message="disconnected"
        )

    async def nothing_more(self) -> bool:
        """True if no packet arrives within a short while (used after everything was acked)."""
        assert self.raw is not None
        try:
            await self.raw.read_packet(timeout=0.5)
        except TimeoutError:
            return True
        return False


def _body(data: bytes) -> bytes:
    index, multiplier, length = 1, 1, 0
    while True:
        byte = data[index]
        length += (byte & 0x7F) * multiplier
        index += 1
        if not byte & 0x80:
            return data[index : index + length]
        multiplier *= 128


@pytest.fixture
async def started(clients: list[Any]) -> AsyncIterator[Callable[..., Any]]:
    """``await started(**settings)`` -> (harness, device, subscriber factory); all closed afterwards."""
    contexts: list[Any] = []

    async def start(**settings: Any) -> tuple[Harness, Paho, Callable[[], Subscriber]]:
        context = ours(**settings)
        harness = await context.__aenter__()
        contexts.append(context)
        device = Paho(harness.port, username="device", password=token(1))
        clients.append(device)
        await device.connect()
        return harness, device, lambda: Subscriber(harness, clients)

    yield start
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


async def send_values(device: Paho, values: range) -> None:
    for value in values:
        await device.publish("ds/Temp", str(value), qos=1)


def payloads(received: list[tuple[int, bool, int | None, bytes]]) -> list[int]:
    return [int(entry[3]) for entry in received]


async def test_unacknowledged_messages_come_again_after_reconnect_in_order(started: Any) -> None:
    harness, device, subscriber_of = await started()
    subscriber = await subscriber_of().connect("d/+/ds/#")
    await send_values(device, range(10))
    first = await subscriber.receive(10)
    assert payloads(first) == list(range(10)) and not any(dup for _, dup, _, _ in first)
    for entry in first[:4]:
        await subscriber.ack(entry[2])
    await eventually(lambda: harness.broker.session_queues()[f"svc:{CLIENT_ID}"].inflight == 6, message="4 acks")
    await subscriber.disconnect()
    await send_values(device, range(10, 13))  # while it is away: the backlog

    again = await subscriber_of().connect()
    resent = await again.receive(9)
    assert payloads(resent) == list(range(4, 13))
    assert [dup for _, dup, _, _ in resent] == [True] * 6 + [False] * 3
    for entry in resent:
        await again.ack(entry[2])
    await eventually(lambda: harness.broker.session_queues()[f"svc:{CLIENT_ID}"].inflight == 0, message="all acked")
    await again.disconnect()

    third = await subscriber_of().connect()
    assert await third.nothing_more(), "acknowledged messages must not come again"


async def test_a_message_is_not_dropped_for_a_late_puback(started: Any) -> None:
    """Stock amqtt gave up on a PUBACK after a hard-coded 5 s and forgot the message."""
    harness, device, subscriber_of = await started()
    subscriber = await subscriber_of().connect("d/+/ds/#")
    await send_values(device, range(1))
    (_, _, packet_id, payload) = await subscriber.publish()
    await asyncio.sleep(6)  # longer than amqtt's PUBACK timeout
    assert harness.broker.session_queues()[f"svc:{CLIENT_ID}"].inflight == 1
    await subscriber.disconnect()
    again = await subscriber_of().connect()
    assert (await again.publish())[1:] == (True, packet_id, payload)


async def test_a_slow_persistent_subscriber_gets_a_backlog_not_a_disconnect(started: Any) -> None:
    harness, device, subscriber_of = await started(service_max_outgoing_queue=5)
    broker: MqttBroker = harness.broker
    subscriber = await subscriber_of().connect("d/+/ds/#")
    await send_values(device, range(40))
    first = await subscriber.receive(5)
    await eventually(lambda: broker.session_queues()[f"svc:{CLIENT_ID}"].backlog == 35, message="backlog of 35")
    queues = broker.session_queues()[f"svc:{CLIENT_ID}"]
    assert (queues.outgoing, queues.inflight, queues.dropped) == (5, 5, 0)
    received = list(first)
    for entry in first:
        await subscriber.ack(entry[2])
    while len(received) < 40:  # each acknowledgement makes room for one more from the backlog
        entry = await subscriber.publish()
        received.append(entry)
        await subscriber.ack(entry[2])
    assert payloads(received) == list(range(40))
    assert broker.session_queues()[f"svc:{CLIENT_ID}"].dropped == 0
    assert subscriber.raw is not None and not await subscriber.raw.closed_by_peer(timeout=0.3)


async def test_a_full_backlog_drops_new_messages_and_counts_them(started: Any) -> None:
    harness, device, subscriber_of = await started(max_session_backlog=10)
    subscriber = await subscriber_of().connect("d/+/ds/#")
    await subscriber.disconnect()
    await eventually(lambda: harness.broker.connected_devices() == {1}, message="device")
    await send_values(device, range(25))
    await eventually(lambda: harness.broker.session_queues()[f"svc:{CLIENT_ID}"].dropped == 15, message="15 dropped")
    again = await subscriber_of().connect()
    received = await again.receive(10)
    assert payloads(received) == list(range(10))  # the oldest are kept: nothing reordered
    for entry in received:
        await again.ack(entry[2])
    assert await again.nothing_more()


async def test_qos2_resumes_with_pubrel_once_pubrec_was_sent(started: Any) -> None:
    harness, device, subscriber_of = await started()
    subscriber = await subscriber_of().connect("d/+/ds/#", qos=2)
    await device.publish("ds/Temp", "7", qos=2)
    qos, dup, packet_id, payload = await subscriber.publish()
    assert (qos, dup, payload) == (2, False, b"7")
    assert subscriber.raw is not None and packet_id is not None
    await subscriber.raw.send(packet(0x50, struct.pack("!H", packet_id)))  # PUBREC
    assert await subscriber.raw.read_packet() == packet(0x62, struct.pack("!H", packet_id))  # PUBREL
    await subscriber.disconnect()  # before PUBCOMP
    again = await subscriber_of().connect()
    assert again.raw is not None
    assert await again.raw.read_packet() == packet(0x62, struct.pack("!H", packet_id))  # PUBREL again, no PUBLISH
    await again.raw.send(packet(0x70, struct.pack("!H", packet_id)))  # PUBCOMP
    await eventually(lambda: harness.broker.session_queues()[f"svc:{CLIENT_ID}"].inflight == 0, message="done")
    assert await again.nothing_more()
