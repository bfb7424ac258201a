"""Shared subscriptions (``$share/<group>/<filter>`` on MQTT 3.1.1, as Mosquitto and EMQX).

Each matching message goes to one member of the group; a member that loses its connection
hands what it did not acknowledge to the others; ACL applies to the inner filter. Members are
raw sockets, so the test decides which PUBLISH gets acknowledged.
"""

from __future__ import annotations

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
    subscribe_packet,
    token,
)

from broker._shared import member_for

SHARED = "$share/ingest/d/+/ds/#"


class Member:
    """A service session on a raw socket (persistent unless told otherwise)."""

    def __init__(self, harness: Harness, clients: list[Any], client_id: str) -> None:
        self.harness, self.clients, self.client_id = harness, clients, client_id
        self.raw: Raw | None = None

    async def connect(self, *filters: str, clean: bool = False) -> list[int]:
        """Connect, subscribe at QoS 1; the SUBACK codes."""
        self.raw = await Raw.open(self.harness.port)
        self.clients.append(self.raw)
        await self.raw.send(connect_packet(self.client_id, SERVICE_USER, SERVICE_PASSWORD, clean=clean))
        connack = await self.raw.read_packet()
        assert connack[:2] == b"\x20\x02" and connack[3] == 0, connack
        if not filters:
            return []
        await self.raw.send(subscribe_packet(1, *filters, qos=1))
        suback = await self.raw.read_packet()
        assert suback[0] == 0x90, suback
        return list(suback[4:])

    async def publish(self, timeout: float = 5.0) -> tuple[int | None, int]:
        """The next PUBLISH: (packet id, payload as int)."""
        assert self.raw is not None
        data = await self.raw.read_packet(timeout=timeout)
        assert data[0] >> 4 == 3, data
        qos = (data[0] >> 1) & 3
        index = 1
        while data[index] & 0x80:
            index += 1
        body = data[index + 1 :]
        (length,) = struct.unpack("!H", body[:2])
        rest = body[2 + length :]
        packet_id = struct.unpack("!H", rest[:2])[0] if qos else None
        return packet_id, int(rest[2:] if qos else rest)

    async def receive(self, count: int) -> list[tuple[int | None, int]]:
        return [await self.publish() for _ in range(count)]

    async def ack(self, packet_id: int | None) -> None:
        assert self.raw is not None and packet_id is not None
        await self.raw.send(b"\x40\x02" + struct.pack("!H", packet_id))

    async def crash(self) -> None:
        """Close the socket without DISCONNECT (a killed process)."""
        assert self.raw is not None
        await self.raw.close()

    async def nothing_more(self) -> bool:
        assert self.raw is not None
        try:
            await self.raw.read_packet(timeout=0.5)
        except TimeoutError:
            return True
        return False


@pytest.fixture
async def started(clients: list[Any]) -> AsyncIterator[Callable[..., Any]]:
    """``await started()`` -> (harness, device, member factory)."""
    contexts: list[Any] = []

    async def start(**settings: Any) -> tuple[Harness, Paho, Callable[[str], Member]]:
        context = ours(**settings)
        harness = await context.__aenter__()
        contexts.append(context)
        device = Paho(harness.port, username="device", password=token(1))
        clients.append(device)
        await device.connect()
        return harness, device, lambda client_id: Member(harness, clients, client_id)

    yield start
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


async def send_values(device: Paho, values: range) -> None:
    for value in values:
        await device.publish("ds/Temp", str(value), qos=1)


async def test_each_message_goes_to_one_member_by_device_and_ordinary_subscribers_get_all(started: Any) -> None:
    harness, first_device, member = await started()
    devices = [first_device]
    for device_id in range(2, 10):
        devices.append(Paho(harness.port, username="device", password=token(device_id)))
    first, second, plain = member("a"), member("b"), member("plain")
    for device in devices[1:]:
        first.clients.append(device)
        await device.connect()
    assert await first.connect(SHARED) == [1]
    assert await second.connect(SHARED) == [1]
    assert await plain.connect("d/+/ds/#") == [1]
    for round_ in range(3):
        for device_id, device in enumerate(devices, start=1):
            await device.publish("ds/Temp", str(device_id * 10 + round_), qos=1)
    everything = [v for _, v in await plain.receive(27)]
    owners = {d: member_for(f"d/{d}/ds/Temp", ["svc:a", "svc:b"]) for d in range(1, 10)}
    assert set(owners.values()) == {"svc:a", "svc:b"}  # these nine devices split between the two
    for who, got in (("svc:a", first), ("svc:b", second)):
        mine = [d for d, owner in owners.items() if owner == who]
        received = [v for _, v in await got.receive(3 * len(mine))]
        assert received == [v for v in everything if v // 10 in mine]  # all of its devices', in order
        assert await got.nothing_more()


async def test_a_crashed_member_hands_its_unacknowledged_messages_to_another(started: Any) -> None:
    harness, device, member = await started()
    owner = member_for("d/1/ds/Temp", ["svc:a", "svc:b"])[4:]  # device 1's member while both are up
    other = "b" if owner == "a" else "a"
    first, second = member(owner), member(other)
    await first.connect(SHARED)
    await second.connect(SHARED)
    await send_values(device, range(10))
    got = await first.receive(10)
    for packet_id, _ in got[:2]:
        await first.ack(packet_id)
    await eventually(lambda: harness.broker.session_queues()[f"svc:{owner}"].inflight == 8, message="2 acks")
    await first.crash()
    handed = await second.receive(8)
    assert [v for _, v in handed] == list(range(2, 10))
    for packet_id, _ in handed:
        await second.ack(packet_id)
    await send_values(device, range(10, 14))  # the survivor gets everything now
    assert [v for _, v in await second.receive(4)] == [10, 11, 12, 13]

    again = member(owner)  # its persistent session resumes: what moved on does not come back
    await again.connect()
    assert await again.nothing_more()
    assert harness.broker.session_queues()[f"svc:{owner}"].inflight == 0


async def test_messages_wait_for_the_group_while_no_member_is_connected(started: Any) -> None:
    _, device, member = await started()
    first = member("a")
    await first.connect(SHARED)
    await send_values(device, range(3))
    unacked = await first.receive(3)
    await first.crash()
    await send_values(device, range(3, 6))
    again = member("a")
    await again.connect()  # persistent: still a member; the group's queue comes first
    received = await again.receive(6)
    assert [v for _, v in received] == [v for _, v in unacked] + [3, 4, 5]


async def test_a_clean_member_leaves_the_group_when_it_disconnects(started: Any) -> None:
    _, device, member = await started()
    clean, persistent = member("clean"), member("kept")
    await clean.connect(SHARED, clean=True)
    await persistent.connect(SHARED)
    await clean.crash()
    await send_values(device, range(4))
    assert [v for _, v in await persistent.receive(4)] == [0, 1, 2, 3]


async def test_malformed_shared_filters_and_devices_are_refused(started: Any) -> None:
    harness, _, member = await started()
    service = member("svc")
    codes = await service.connect("$share/g", "$share//d/#", "$share/g+/d/#", "$share/g/d/#/x", "$share/g/d/#")
    assert codes == [0x80, 0x80, 0x80, 0x80, 1]
    device = Paho(harness.port, username="device", password=token(2))
    service.clients.append(device)
    await device.connect()
    assert await device.subscribe("$share/g/downlink/#", "$share/g/#", qos=1) == [0x80, 0x80]
