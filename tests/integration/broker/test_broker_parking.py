"""An idle connection holds no task (issue #16: memory a connection).

Once a plain-TCP client is connected and nothing of it is left to handle, its reader
(``FramedReader.park``) and its message loop (``LifecycleBroker._message_loop``) both return
instead of waiting in a task: PUBLISH, PUBACK and PINGREQ are handled as they arrive, and
anything else, the end of the stream or the keep-alive deadline starts them again. These
tests hold the broker to that, and check that a parked connection still does everything a
waiting one did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    Raw,
    connect_packet,
    eventually,
    ours,
    packet,
    publish_packet,
    subscribe_packet,
    token,
)

from broker._session import Connection

DEVICES = 9  # the test tokens (1..9)
PINGREQ, PINGRESP = b"\xc0\x00", b"\xd0\x00"


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with ours() as running:
        yield running


def tasks() -> int:
    return len(asyncio.all_tasks())


async def device(harness: Harness, clients: list[Any], device_id: int, keepalive: int = 60) -> Raw:
    raw = await Raw.open(harness.port)
    clients.append(raw)
    await raw.send(connect_packet(username="device", password=token(device_id), keepalive=keepalive))
    assert await raw.read_packet() == b"\x20\x02\x00\x00"
    await raw.send(subscribe_packet(1, "downlink/#", qos=1))
    assert await raw.read_packet() == b"\x90\x03\x00\x01\x01"
    return raw


def connection(harness: Harness, device_id: int) -> Connection:
    found = harness.broker._core.connections[f"dev:{device_id}"]
    assert isinstance(found, Connection)
    return found


async def test_idle_devices_hold_no_task_and_still_get_everything(harness: Harness, clients: list[Any]) -> None:
    before = tasks()
    devices = [await device(harness, clients, n) for n in range(1, DEVICES + 1)]
    await eventually(lambda: tasks() <= before, message="no task left for idle connections")
    assert harness.broker.open_connections() == DEVICES

    for raw in devices:  # keep-alive, QoS 1 uplink: answered with no task started
        await raw.send(PINGREQ)
        assert await raw.read_packet() == PINGRESP
        await raw.send(publish_packet("ds/T", b"21.5", qos=1, packet_id=7))
        assert await raw.read_packet() == b"\x40\x02\x00\x07"
    assert tasks() <= before

    service = await Raw.open(harness.port)
    clients.append(service)
    await service.send(connect_packet("backend", SERVICE_USER, SERVICE_PASSWORD))
    assert (await service.read_packet())[:4] == b"\x20\x02\x00\x00"
    await service.send(publish_packet("d/5/downlink/ds/Power", b"1"))
    downlink = await devices[4].read_packet()
    assert downlink[0] >> 4 == 3 and downlink.endswith(b"downlink/ds/Power1")

    await devices[0].send(subscribe_packet(2, "downlink/ds/Other"))  # wakes reader and loop
    assert await devices[0].read_packet() == b"\x90\x03\x00\x02\x00"
    await eventually(lambda: tasks() <= before + 1, message="idle again: only the service's connection")
    await devices[0].send(packet(0xE0, b""))  # DISCONNECT ends the parked connection
    assert await devices[0].closed_by_peer()
    await eventually(lambda: harness.broker.open_connections() == DEVICES, message="one device gone")


async def test_a_silent_parked_device_is_dropped_at_its_keepalive(harness: Harness, clients: list[Any]) -> None:
    before = tasks()
    raw = await device(harness, clients, 1, keepalive=1)
    await eventually(lambda: tasks() <= before, message="parked")
    assert await raw.closed_by_peer(timeout=5.0)  # 1.5 s of silence (keepalive_grace)
    await eventually(lambda: connection_gone(harness, 1), message="the silent device's connection finished")


def connection_gone(harness: Harness, device_id: int) -> bool:
    return f"dev:{device_id}" not in harness.broker._core.connections


async def test_stopping_a_handler_whose_reader_was_woken_but_not_started(harness: Harness, clients: list[Any]) -> None:
    """A wake-up starts a reader task; the handler stopped before that task ran must not
    wait for it forever (amqtt waits for its reader loop to report it stopped)."""
    before = tasks()
    await device(harness, clients, 1)
    await eventually(lambda: tasks() <= before, message="parked")
    live = connection(harness, 1)
    live.reader._unpark()  # what arriving bytes do: a reader task is made, not yet run
    async with asyncio.timeout(5):
        await live.handler.stop()
    await eventually(lambda: connection_gone(harness, 1), message="the stopped connection finished")
