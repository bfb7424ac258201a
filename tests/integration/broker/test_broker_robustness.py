"""Bad input closes only the offending client; presence tells why; nothing stalls others."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Harness,
    Paho,
    Raw,
    connect_packet,
    connected_raw,
    eventually,
    offline_reason,
    ours,
    presence_watcher,
    publish_packet,
    token,
)

from broker import BrokerSettings, MqttBroker


async def assert_others_fine(paho: Callable[..., Paho]) -> None:
    """A fresh device and the existing backend still exchange messages."""
    backend = await paho(client_id="check", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await backend.subscribe("d/9/ds/#")
    device = await paho(username="device", password=token(9)).connect()
    await device.publish("ds/Alive", b"1", qos=1)
    assert (await backend.received("d/9/ds/Alive")).payload == b"1"


async def test_presence_online_payload_and_retained(harness: Harness, paho: Callable[..., Paho]) -> None:
    device = await paho(client_id="esp-1", username="device", password=token(4), keepalive=45).connect()
    late = await presence_watcher(paho)  # subscribes after the fact: gets the retained state
    online = json.loads((await late.received("sys/presence/4")).payload)
    assert online["online"] is True and online["ip"] == "127.0.0.1"
    assert (online["client_id"], online["keep_alive"]) == ("esp-1", 45)
    assert isinstance(online["port"], int) and isinstance(online["ts"], int)
    await device.close()
    assert await offline_reason(late, 4) == "disconnect"


async def test_connection_lost_reason(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    watcher = await presence_watcher(paho)
    client = await connected_raw(raw)
    client.writer.transport.abort()
    assert await offline_reason(watcher, 1) == "connection_lost"


async def test_keepalive_timeout_reason_and_keepalive_zero_is_forever(
    paho: Callable[..., Paho], raw: Callable[[], Any]
) -> None:
    watcher = await presence_watcher(paho)
    forever = await connected_raw(raw, device_id=2, keepalive=0)
    silent = await connected_raw(raw, device_id=1, keepalive=1)
    assert await silent.closed_by_peer(timeout=4.0)
    assert await offline_reason(watcher, 1) == "keepalive_timeout"
    assert not await forever.closed_by_peer(timeout=0.2)


async def test_pings_keep_a_client_alive(raw: Callable[[], Any]) -> None:
    client = await connected_raw(raw, keepalive=1)
    for _ in range(4):  # 2 s of pings every 0.5 s: longer than 1.5 x keep-alive
        await client.send(b"\xc0\x00")
        assert await client.read_packet() == b"\xd0\x00"
        await asyncio.sleep(0.5)


async def test_oversized_publish_closes_only_that_client(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    watcher = await presence_watcher(paho)
    client = await connected_raw(raw)
    await client.send(publish_packet("ds/Big", b"x" * 1100))
    assert await client.closed_by_peer()
    assert await offline_reason(watcher, 1) == "packet_too_large"
    await assert_others_fine(paho)


async def test_oversized_connect_closed_without_reading_body(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    client: Raw = await raw()
    await client.send(bytes([0x10, 0x80, 0x80, 0x80, 0x01]))  # CONNECT declaring 2 MB; no body sent
    assert await client.closed_by_peer()
    await assert_others_fine(paho)


async def test_garbage_bytes_close_only_that_client(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    before: Raw = await raw()
    await before.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await before.closed_by_peer()
    after = await connected_raw(raw)
    await after.send(b"\xf0\x03abc")  # reserved packet type after CONNECT
    assert await after.closed_by_peer()
    await assert_others_fine(paho)


async def test_truncated_packets_do_not_stall_others(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    half_connect: Raw = await raw()
    await half_connect.send(connect_packet(username="device", password=token(2))[:10])
    half_publish = await connected_raw(raw)
    await half_publish.send(publish_packet("ds/T", b"12345")[:6])
    await assert_others_fine(paho)  # while both are stuck mid-packet
    half_publish.writer.transport.abort()
    half_connect.writer.transport.abort()
    await assert_others_fine(paho)


async def test_publish_to_dollar_topic_closes_client(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    watcher = await presence_watcher(paho)
    client = await connected_raw(raw)
    await client.send(publish_packet("$SYS/broker/load", b"1"))
    assert await client.closed_by_peer()
    assert await offline_reason(watcher, 1) == "protocol_error"
    await assert_others_fine(paho)


async def test_client_that_never_sends_connect_is_closed(clients: list[Any]) -> None:
    async with ours(connect_timeout=0.2) as running:
        client = await Raw.open(running.port)
        clients.append(client)
        assert await client.closed_by_peer(timeout=3.0)


async def test_stop_publishes_shutdown_presence() -> None:
    async with ours() as running:
        watcher = Paho(running.port, client_id="w", username=SERVICE_USER, password=SERVICE_PASSWORD)
        await watcher.connect()
        await watcher.subscribe("sys/presence/#", qos=1)
        device = Paho(running.port, username="device", password=token(5))
        await device.connect()
        await eventually(lambda: len(watcher.messages) == 1)
        await running.broker.stop()
        try:
            assert await offline_reason(watcher, 5) == "shutdown"
        finally:
            await watcher.close()
            await device.close()


def test_constructed_outside_a_loop_then_used_as_context_manager() -> None:
    broker = MqttBroker(BrokerSettings(port=0), object())  # type: ignore[arg-type]

    async def run() -> None:
        async with broker as running:
            assert running.port > 0 and running.connected_devices() == set()
        assert broker.connected_devices() == set()

    asyncio.run(run())


async def test_garbage_right_behind_connect_still_finishes_the_connection(
    harness: Harness, paho: Callable[..., Paho], raw: Callable[[], Any]
) -> None:
    """Stock race: the reader ended before amqtt armed its disconnect waiter (found by fuzzing)."""
    watcher = await presence_watcher(paho)
    for _ in range(5):
        client: Raw = await raw()
        await client.send(connect_packet(username="device", password=token(1)) + b"\xf0\x00")
        assert await client.closed_by_peer()
    await eventually(lambda: harness.broker.open_connections() == 1, message="only the watcher left")
    assert harness.broker.connected_devices() == set()
    assert await offline_reason(watcher, 1) == "protocol_error"


async def test_disconnect_device_revokes_without_last_will(harness: Harness, paho: Callable[..., Paho]) -> None:
    watcher = await presence_watcher(paho)
    await watcher.subscribe("d/1/#", qos=1)
    device = await paho(username="device", password=token(1), will=("ds/Status", b"dead")).connect()
    assert await harness.broker.disconnect_device(1) is True
    assert await offline_reason(watcher, 1) == "revoked"
    await eventually(lambda: device.disconnected, message="device sees the close")
    assert harness.broker.connected_devices() == set()
    await watcher.publish("d/1/ds/Marker", b"1", qos=1)  # broadcasts are FIFO: a will would come first
    await watcher.received("d/1/ds/Marker")
    assert "d/1/ds/Status" not in watcher.topics()  # a revoked device's will is not published
    assert await harness.broker.disconnect_device(1) is False
