"""A device's QoS 1 PUBLISH is acknowledged only once a durable sink has it (``broker._acks``).

The sink here is a persistent service session on a raw socket (``Member``), so the test decides
which copy gets acknowledged, as the app's ingest does after its commit. Devices are paho
clients (MQTT 3.1.1, clean session) or raw sockets where the test needs byte-exact floods.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _broker_harness import (
    GATEWAY_PASSWORD,
    Harness,
    Paho,
    Raw,
    connect_packet,
    eventually,
    ours,
    publish_packet,
    token,
)
from test_broker_shared import Member

from broker import MqttBroker
from broker._framing import HELD_PUBLISHES

SINK = "$share/app/d/+/ds/#"


@pytest.fixture
async def sinking(clients: list[Any]) -> AsyncIterator[Callable[..., Any]]:
    """``await sinking(**settings)`` -> (harness, device factory, member factory), sink_acks on."""
    contexts: list[Any] = []

    async def start(**settings: Any) -> tuple[Harness, Callable[[int], Any], Callable[[str], Member]]:
        context = ours(sink_acks=True, **settings)
        harness = await context.__aenter__()
        contexts.append(context)

        async def device(n: int) -> Paho:
            client = Paho(harness.port, username="device", password=token(n), client_id=f"dev{n}")
            clients.append(client)
            return await client.connect()

        return harness, device, lambda client_id: Member(harness, clients, client_id)

    yield start
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


def unsunk(broker: MqttBroker) -> int:
    return len(broker._core.unsunk)  # type: ignore[union-attr]


def group_pending(broker: MqttBroker) -> int:
    return sum(len(group.pending) for group in broker._core.shared.groups.values())  # type: ignore[union-attr]


def withheld(broker: MqttBroker, device_id: int) -> int:
    connection = broker._core.connections[f"dev:{device_id}"]  # type: ignore[union-attr]
    assert connection.inflight is not None
    return connection.inflight.count


async def test_puback_waits_for_a_sink_then_for_its_acknowledgement(sinking: Callable[..., Any]) -> None:
    harness, device, member = await sinking()
    dev = await device(1)
    info = dev.client.publish("ds/Temperature", b"21", qos=1)
    await eventually(lambda: unsunk(harness.broker) == 1, message="the uplink waits for a sink")
    assert not info.is_published()  # no sink yet: no PUBACK (stock amqtt acknowledged on receipt)

    app = member("app")
    await app.connect(SINK)  # the first durable sink: the waiting uplink goes to it
    packet_id, value = await app.publish()
    assert value == 21 and unsunk(harness.broker) == 0
    assert withheld(harness.broker, 1) == 1 and not info.is_published()  # taken, not yet committed

    await app.ack(packet_id)  # "committed"
    await eventually(info.is_published, message="PUBACK after the sink's acknowledgement")
    assert withheld(harness.broker, 1) == 0


async def test_puback_waits_while_the_sink_is_offline(sinking: Callable[..., Any]) -> None:
    harness, device, member = await sinking()
    app = member("app")
    await app.connect(SINK)
    await app.crash()  # persistent: its session and subscription stay, messages wait for it
    dev = await device(1)
    infos = [dev.client.publish("ds/Temperature", str(n).encode(), qos=1) for n in range(5)]
    await eventually(lambda: group_pending(harness.broker) == 5, message="kept for the app")
    assert not any(info.is_published() for info in infos)

    await app.connect()  # resumes its session: the five come, each acknowledged in turn
    for n in range(5):
        packet_id, value = await app.publish()
        assert value == n
        await app.ack(packet_id)
        await eventually(infos[n].is_published, message=f"PUBACK {n}")


async def test_a_clean_subscriber_is_no_sink(sinking: Callable[..., Any]) -> None:
    """A console-like clean subscriber gets the value at once; the PUBACK still waits for the app."""
    harness, device, member = await sinking()
    watcher = member("watcher")
    await watcher.connect("d/+/ds/#", clean=True)
    dev = await device(1)
    info = dev.client.publish("ds/Temperature", b"7", qos=1)
    _, value = await watcher.publish()
    assert value == 7
    await eventually(lambda: unsunk(harness.broker) == 1, message="waits for a durable sink")
    assert not info.is_published()


async def test_a_refused_publish_is_answered_at_once(sinking: Callable[..., Any]) -> None:
    """Nothing to store (not an uplink topic): the PUBACK is not withheld."""
    harness, device, _ = await sinking()
    dev = await device(1)
    await dev.publish("downlink/ds/Temperature", b"1", qos=1)  # waits for the PUBACK
    assert withheld(harness.broker, 1) == 0 and unsunk(harness.broker) == 0


async def test_a_flooding_device_is_slowed_not_dropped_and_others_are_not(
    sinking: Callable[..., Any], clients: list[Any]
) -> None:
    limit, flood = 5, 200
    harness, device, member = await sinking(device_inflight_limit=limit, device_rate_limit=10_000.0)
    app = member("app")
    await app.connect(SINK)
    flooder = await Raw.open(harness.port)
    clients.append(flooder)
    await flooder.send(connect_packet("flooder", "device", token(1)))
    assert (await flooder.read_packet())[3] == 0
    for n in range(flood):  # all written to the socket at once; the broker reads what it may
        await _write(flooder, publish_packet("ds/Count", str(n).encode(), qos=1, packet_id=n + 1))

    held: list[tuple[int | None, int]] = []
    other = await device(2)
    info = other.client.publish("ds/Temperature", b"-1", qos=1)
    while True:  # the app acknowledges device 2's value only: device 1 stays at its limit
        packet_id, value = await app.publish()
        if value == -1:
            await app.ack(packet_id)
            break
        held.append((packet_id, value))
    await eventually(info.is_published, message="the other device's PUBACK")
    assert withheld(harness.broker, 1) <= limit + 32  # read no further (one read burst at most)
    assert len(held) < flood

    for n in range(flood):  # the app catches up: every value comes, in order, and is answered
        packet_id, value = held[n] if n < len(held) else await app.publish()
        assert value == n
        await app.ack(packet_id)
    pubacks = {struct.unpack("!H", (await flooder.read_packet())[2:4])[0] for _ in range(flood)}
    assert pubacks == set(range(1, flood + 1))
    assert "dev:1" in harness.broker.session_queues()  # slowed, never disconnected


async def test_the_backlog_keeps_every_unacknowledged_uplink(sinking: Callable[..., Any]) -> None:
    """Past max_session_backlog the sink's backlog still keeps what devices wait to have
    acknowledged (before: new values were dropped after their PUBACK)."""
    harness, device, member = await sinking(max_session_backlog=10)  # the group queue's limit too
    app = member("app")
    await app.connect(SINK)
    await app.crash()
    devices = [await device(n) for n in (1, 2, 3)]
    infos = [
        d.client.publish("ds/Temperature", str(i * 100 + n).encode(), qos=1)
        for i, d in enumerate(devices)
        for n in range(10)
    ]
    await eventually(lambda: group_pending(harness.broker) == 30, message="all 30 kept")

    await app.connect()
    got = set()
    for _ in range(30):
        packet_id, value = await app.publish()
        got.add(value)
        await app.ack(packet_id)
    assert got == {i * 100 + n for i in range(3) for n in range(10)}
    await eventually(lambda: all(info.is_published() for info in infos), message="30 PUBACKs")


async def test_a_gateway_devices_values_wait_for_the_sink_too(sinking: Callable[..., Any], clients: list[Any]) -> None:
    harness, _, member = await sinking()
    app = member("app")
    await app.connect(SINK)
    gateway = Paho(harness.port, username="gw-a", password=GATEWAY_PASSWORD, client_id="bridge-gw-a")
    clients.append(gateway)
    await gateway.connect()
    info = gateway.client.publish(f"dev/{token(2)}/ds/Temperature", b"5", qos=1)
    packet_id, value = await app.publish()
    assert value == 5 and not info.is_published()
    await app.ack(packet_id)
    await eventually(info.is_published, message="the gateway's PUBACK after the sink's")


async def _write(raw: Raw, data: bytes) -> None:
    raw.writer.write(data)  # no drain: the broker may stop reading, the kernel buffers the rest


async def test_a_device_at_its_window_stays_connected_while_its_acks_wait(
    sinking: Callable[..., Any], clients: list[Any]
) -> None:
    """Issue #15 (chaos: PostgreSQL stopped 60 s): at the in-flight limit the broker keeps reading
    the socket and answers PINGREQ, so paho (max_inflight 20) keeps its keep-alive and never
    reconnects to resend its 20 as duplicates (before: PINGREQs unread, paho dropped the link)."""
    keepalive = 2
    harness, _, member = await sinking(device_inflight_limit=20)
    app = member("app")
    await app.connect(SINK)
    dev = Paho(harness.port, username="device", password=token(1), client_id="dev1", keepalive=keepalive)
    clients.append(dev)
    await dev.connect()
    connection = harness.broker._core.connections["dev:1"]  # type: ignore[union-attr]
    infos = [dev.client.publish("ds/Count", str(n).encode(), qos=1) for n in range(20)]
    held = await app.receive(20)  # the app has them all and acknowledges none (its commit waits)
    assert [value for _, value in held] == list(range(20)) and withheld(harness.broker, 1) == 20

    await asyncio.sleep(4 * keepalive)  # several keep-alive periods at the limit
    assert not dev.disconnected  # paho's PINGREQs were answered
    assert harness.broker._core.connections["dev:1"] is connection  # type: ignore[union-attr]
    assert not any(info.is_published() for info in infos)

    for packet_id, _ in held:  # the commit is done: every PUBACK goes out
        await app.ack(packet_id)
    await eventually(lambda: all(info.is_published() for info in infos), message="the 20 PUBACKs")
    assert not dev.disconnected and withheld(harness.broker, 1) == 0


async def test_a_flooding_device_is_read_only_a_bounded_buffer_past_its_limit(
    sinking: Callable[..., Any], clients: list[Any]
) -> None:
    limit, flood = 5, 200
    harness, _, member = await sinking(device_inflight_limit=limit, device_rate_limit=10_000.0)
    app = member("app")
    await app.connect(SINK)
    flooder = await Raw.open(harness.port)
    clients.append(flooder)
    await flooder.send(connect_packet("flooder", "device", token(1)))
    assert (await flooder.read_packet())[3] == 0
    for n in range(flood):  # a client that ignores the window
        await _write(flooder, publish_packet("ds/Count", str(n).encode(), qos=1, packet_id=n + 1))
    connection = harness.broker._core.connections["dev:1"]  # type: ignore[union-attr]

    def kept() -> deque[bytes]:  # the reader makes its buffer when it first holds packets
        return connection.handler.reader._held or deque()

    await eventually(lambda: len(kept()) == HELD_PUBLISHES, message="the bounded buffer fills")
    assert withheld(harness.broker, 1) <= limit + 32  # no further: the socket is not read
    assert withheld(harness.broker, 1) + len(kept()) < flood

    for n in range(flood):  # acknowledged as they come: every value arrives, in order
        packet_id, value = await app.publish()
        assert value == n
        await app.ack(packet_id)
    pubacks = {struct.unpack("!H", (await flooder.read_packet())[2:4])[0] for _ in range(flood)}
    assert pubacks == set(range(1, flood + 1)) and not kept()
