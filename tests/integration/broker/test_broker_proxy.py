"""The PROXY-protocol listener of the WebSocket bridge: real client address, same rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _broker_harness import (
    Harness,
    Paho,
    Raw,
    connect_packet,
    eventually,
    ours,
    presence_watcher,
    publish_packet,
    token,
)


@pytest.fixture
async def proxied(clients: list[Any]) -> AsyncIterator[tuple[Harness, Callable[..., Paho]]]:
    async with ours(host="0.0.0.0", proxy_port=0, auth_failures_per_minute=2) as harness:

        def build(**kwargs: Any) -> Paho:
            client = Paho(harness.port, **kwargs)
            clients.append(client)
            return client

        yield harness, build


async def open_proxied(harness: Harness, clients: list[Any], line: bytes) -> Raw:
    client = await Raw.open(harness.broker.proxy_port)
    clients.append(client)
    await client.send(line)
    return client


async def presence_of(watcher: Paho, device_id: int) -> dict[str, Any]:
    topic = f"sys/presence/{device_id}"
    await eventually(lambda: topic in watcher.topics(), what=topic)
    return dict(json.loads(next(m.payload for m in list(watcher.messages) if m.topic == topic)))


async def test_proxy_listener_is_loopback_only_on_its_own_port(proxied: tuple[Harness, Any]) -> None:
    harness, _ = proxied
    core = harness.broker._core
    (sock,) = core._servers["proxy"].instance.sockets
    assert sock.getsockname()[0] == "127.0.0.1"  # although host is 0.0.0.0
    assert harness.broker.proxy_port == sock.getsockname()[1] != harness.port


@pytest.mark.parametrize(
    ("line", "ip", "port"),
    [
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\r\n", "203.0.113.7", 50123),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n", "2001:db8::7", 40000),
    ],
)
async def test_presence_shows_the_proxied_client_and_transport_ws(
    proxied: tuple[Harness, Any], clients: list[Any], line: bytes, ip: str, port: int
) -> None:
    harness, paho = proxied
    watcher = await presence_watcher(paho)
    device = await open_proxied(harness, clients, line + connect_packet(username="device", password=token(1)))
    assert await device.read_packet() == b"\x20\x02\x00\x00"
    online = await presence_of(watcher, 1)
    assert (online["ip"], online["port"], online["transport"]) == (ip, port, "ws")
    assert harness.authenticator is not None and harness.authenticator.calls[-1].remote_address == ip


async def test_unknown_keeps_the_socket_peer(proxied: tuple[Harness, Any], clients: list[Any]) -> None:
    harness, paho = proxied
    watcher = await presence_watcher(paho)
    device = await open_proxied(harness, clients, b"PROXY UNKNOWN\r\n" + connect_packet(username="device", password=token(2)))
    assert await device.read_packet() == b"\x20\x02\x00\x00"
    online = await presence_of(watcher, 2)
    assert (online["ip"], online["transport"]) == ("127.0.0.1", "ws")
    assert online["port"] == device.writer.get_extra_info("sockname")[1]


@pytest.mark.parametrize(
    "first_bytes",
    [
        connect_packet(username="device", password=token(1)),  # no PROXY line at all
        b"PROXY TCP4 999.0.0.1 192.0.2.1 1 2\r\n" + connect_packet(username="device", password=token(1)),
        b"PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\n" + connect_packet(username="device", password=token(1)),
        b"PROXY " + b"x" * 200,
    ],
)
async def test_missing_or_malformed_line_closes_the_connection(
    proxied: tuple[Harness, Any], clients: list[Any], first_bytes: bytes
) -> None:
    harness, _ = proxied
    client = await open_proxied(harness, clients, first_bytes)
    assert await client.closed_by_peer()
    assert harness.authenticator is not None and harness.authenticator.calls == []


async def test_same_acl_and_limits_as_tcp(proxied: tuple[Harness, Any], clients: list[Any]) -> None:
    harness, paho = proxied
    line = b"PROXY TCP4 198.51.100.9 192.0.2.1 1000 443\r\n"
    device = await open_proxied(harness, clients, line + connect_packet(username="device", password=token(3)))
    assert await device.read_packet() == b"\x20\x02\x00\x00"
    await device.send(publish_packet("d/4/ds/Spoof", b"1"))  # not an uplink topic: diag, not routed
    diag = await device.read_packet()
    assert b"downlink/diag" in diag and b"not a Blynk uplink topic" in diag
    big = await open_proxied(harness, clients, line + connect_packet(username="device", password=token(4)))
    assert await big.read_packet() == b"\x20\x02\x00\x00"
    await big.send(publish_packet("ds/Big", b"x" * 2000))  # above max_packet_size
    assert await big.closed_by_peer()


async def test_login_throttling_counts_the_proxied_address(proxied: tuple[Harness, Any], clients: list[Any]) -> None:
    harness, _ = proxied
    attacker = b"PROXY TCP4 198.51.100.66 192.0.2.1 1000 443\r\n"
    neighbour = b"PROXY TCP4 198.51.100.67 192.0.2.1 1000 443\r\n"
    for _ in range(2):
        client = await open_proxied(harness, clients, attacker + connect_packet(username="device", password="bad"))
        assert await client.read_packet() == b"\x20\x02\x00\x04"
    refused = await open_proxied(harness, clients, attacker + connect_packet(username="device", password=token(5)))
    assert await refused.read_packet() == b"\x20\x02\x00\x04"  # throttled: even a good token
    other = await open_proxied(harness, clients, neighbour + connect_packet(username="device", password=token(5)))
    assert await other.read_packet() == b"\x20\x02\x00\x00"  # another browser behind the same bridge
    await asyncio.sleep(0)
