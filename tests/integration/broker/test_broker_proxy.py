"""The WebSocket bridge's listener: signed PROXY v2 headers give the real client address, same rules.

Any local process can connect to 127.0.0.1, so an address is believed only from a header signed
with the bridge's key (issue #11 item 3): a forged header is closed before its CONNECT is read,
so it can neither set a device's address, nor lock an address out, nor dodge the throttle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
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

from broker import proxy_header

KEY = bytes(range(32))
WRONG_KEY = bytes(range(1, 33))
SERVER = ("192.0.2.1", 443)
CONNACK_OK, CONNACK_REFUSED = b"\x20\x02\x00\x00", b"\x20\x02\x00\x04"


def signed(ip: str, port: int = 50123, key: bytes = KEY, **kwargs: Any) -> bytes:
    return proxy_header(key, (ip, port), SERVER, **kwargs)


@pytest.fixture
async def proxied(clients: list[Any]) -> AsyncIterator[tuple[Harness, Callable[..., Paho]]]:
    async with ours(host="0.0.0.0", proxy_port=0, proxy_key=KEY, auth_failures_per_minute=2) as harness:

        def build(**kwargs: Any) -> Paho:
            client = Paho(harness.port, **kwargs)
            clients.append(client)
            return client

        yield harness, build


async def open_proxied(harness: Harness, clients: list[Any], first_bytes: bytes) -> Raw:
    client = await Raw.open(harness.broker.proxy_port)
    clients.append(client)
    await client.send(first_bytes)
    return client


async def answer_until_closed(client: Raw, timeout: float = 3.0) -> bytes:
    """Everything the broker sent before it closed the connection (TimeoutError if it did not)."""
    received = b""
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(timeout):
            while chunk := await client.reader.read(4096):
                received += chunk
    return received


async def presence_of(watcher: Paho, device_id: int) -> dict[str, Any]:
    topic = f"sys/presence/{device_id}"
    await eventually(lambda: topic in watcher.topics(), message=topic)
    return dict(json.loads(next(m.payload for m in list(watcher.messages) if m.topic == topic)))


async def test_proxy_listener_is_loopback_only_on_its_own_port(proxied: tuple[Harness, Any]) -> None:
    harness, _ = proxied
    core = harness.broker._core
    (sock,) = core._servers["proxy"].instance.sockets
    assert sock.getsockname()[0] == "127.0.0.1"  # although host is 0.0.0.0
    assert harness.broker.proxy_port == sock.getsockname()[1] != harness.port


@pytest.mark.parametrize(("ip", "port"), [("203.0.113.7", 50123), ("2001:db8::7", 40000)])
async def test_presence_shows_the_proxied_client_and_transport_ws(
    proxied: tuple[Harness, Any], clients: list[Any], ip: str, port: int
) -> None:
    harness, paho = proxied
    watcher = await presence_watcher(paho)
    device = await open_proxied(
        harness, clients, signed(ip, port) + connect_packet(username="device", password=token(1))
    )
    assert await device.read_packet() == CONNACK_OK
    online = await presence_of(watcher, 1)
    assert (online["ip"], online["port"], online["transport"]) == (ip, port, "ws")
    assert harness.authenticator is not None and harness.authenticator.calls[-1].remote_address == ip


async def test_an_unspecified_client_keeps_the_socket_peer(proxied: tuple[Harness, Any], clients: list[Any]) -> None:
    harness, paho = proxied
    watcher = await presence_watcher(paho)
    header = proxy_header(KEY, None, SERVER)
    device = await open_proxied(harness, clients, header + connect_packet(username="device", password=token(2)))
    assert await device.read_packet() == CONNACK_OK
    online = await presence_of(watcher, 2)
    assert (online["ip"], online["transport"]) == ("127.0.0.1", "ws")
    assert online["port"] == device.writer.get_extra_info("sockname")[1]


def _forged_v2(ip: str) -> bytes:
    """A well-formed header naming ``ip`` whose MAC is not the key's (bit flipped)."""
    header = bytearray(signed(ip))
    header[-1] ^= 0x01
    return bytes(header)


FORGED_HEADERS = {
    "no header": b"",
    "v1 line": b"PROXY TCP4 203.0.113.66 192.0.2.1 50123 443\r\n",
    "v1 unknown": b"PROXY UNKNOWN\r\n",
    "v2 wrong mac": _forged_v2("203.0.113.66"),
    "v2 other key": signed("203.0.113.66", key=WRONG_KEY),
    "v2 stale": signed("203.0.113.66", now=time.time() - 120),
    "v2 future": signed("203.0.113.66", now=time.time() + 120),
    "v2 too long": b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x01\x01" + b"\x00" * 300,
    "v2 truncated": signed("203.0.113.66")[:-5],
}


@pytest.mark.parametrize("header", FORGED_HEADERS.values(), ids=FORGED_HEADERS.keys())
async def test_an_unsigned_header_is_closed_before_its_connect_is_read(
    proxied: tuple[Harness, Any], clients: list[Any], header: bytes
) -> None:
    harness, _ = proxied
    client = await open_proxied(harness, clients, header + connect_packet(username="device", password=token(6)))
    assert await answer_until_closed(client) == b""  # no CONNACK: the good token was never checked
    assert harness.authenticator is not None and harness.authenticator.calls == []
    assert harness.broker.connected_devices() == set()  # no device online at a forged address


async def test_a_signed_header_is_believed_once(proxied: tuple[Harness, Any], clients: list[Any]) -> None:
    harness, _ = proxied
    header = signed("203.0.113.8")
    first = await open_proxied(harness, clients, header + connect_packet(username="device", password=token(7)))
    assert await first.read_packet() == CONNACK_OK
    replay = await open_proxied(harness, clients, header + connect_packet(username="device", password=token(8)))
    assert await answer_until_closed(replay) == b""
    assert harness.broker.connected_devices() == {7}


async def test_forged_failed_logins_do_not_lock_out_the_named_address(
    proxied: tuple[Harness, Any], clients: list[Any]
) -> None:
    """Bad logins "from" a victim's address by a local process are not counted: the victim still logs in."""
    harness, _ = proxied
    victim = "198.51.100.50"
    forged = [b"PROXY TCP4 198.51.100.50 192.0.2.1 1000 443\r\n", _forged_v2(victim), signed(victim, key=WRONG_KEY)]
    for header in forged * 2:  # three times the limit of 2
        client = await open_proxied(harness, clients, header + connect_packet(username="device", password="bad"))
        assert await answer_until_closed(client) == b""
    assert not harness.broker._core.auth_throttle.blocked(victim)
    device = await open_proxied(harness, clients, signed(victim) + connect_packet(username="device", password=token(9)))
    assert await device.read_packet() == CONNACK_OK


async def test_same_acl_and_limits_as_tcp(proxied: tuple[Harness, Any], clients: list[Any]) -> None:
    harness, _ = proxied
    device = await open_proxied(
        harness, clients, signed("198.51.100.9") + connect_packet(username="device", password=token(3))
    )
    assert await device.read_packet() == CONNACK_OK
    await device.send(publish_packet("d/4/ds/Spoof", b"1"))  # not an uplink topic: diag, not routed
    diag = await device.read_packet()
    assert b"downlink/diag" in diag and b"not a Blynk uplink topic" in diag
    big = await open_proxied(
        harness, clients, signed("198.51.100.9") + connect_packet(username="device", password=token(4))
    )
    assert await big.read_packet() == CONNACK_OK
    await big.send(publish_packet("ds/Big", b"x" * 2000))  # above max_packet_size
    assert await big.closed_by_peer()


async def test_login_throttling_counts_the_proxied_address(proxied: tuple[Harness, Any], clients: list[Any]) -> None:
    harness, _ = proxied
    attacker, neighbour = "198.51.100.66", "198.51.100.67"
    for _ in range(2):
        client = await open_proxied(
            harness, clients, signed(attacker) + connect_packet(username="device", password="bad")
        )
        assert await client.read_packet() == CONNACK_REFUSED
    refused = await open_proxied(
        harness, clients, signed(attacker) + connect_packet(username="device", password=token(5))
    )
    assert await refused.read_packet() == CONNACK_REFUSED  # throttled: even a good token
    other = await open_proxied(
        harness, clients, signed(neighbour) + connect_packet(username="device", password=token(5))
    )
    assert await other.read_packet() == CONNACK_OK  # another browser behind the same bridge
