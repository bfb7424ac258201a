"""Signed PROXY protocol v2 headers: what is believed, what is refused, and that MQTT bytes stay unread."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import struct
import time

import pytest

from backend.security import Secrets
from broker import proxy_header
from broker._proxy import (
    MAX_BODY,
    MAX_SKEW,
    SIGNATURE,
    NonceCache,
    ProxyHeader,
    ProxyRefused,
    read_proxy_header,
    verify_proxy_header,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
NOW = 1_800_000_000.0
NONCE = bytes(range(16))
V1_LINE = b"PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\r\n"
MQTT_CONNECT = b"\x10\x1e\x00\x04MQTT\x04\x02\x00<"


def header(client: tuple[str, int] | None = ("203.0.113.7", 50123)) -> bytes:
    return proxy_header(KEY, client, ("192.0.2.1", 443), now=NOW, nonce=NONCE)


def resign(data: bytes, key: bytes = KEY) -> bytes:
    """``data`` with its MAC recomputed, as someone holding ``key`` would send it."""
    return data[:-32] + hmac.new(key, data[:-32], hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        (("203.0.113.7", 50123), ("192.0.2.1", 443), ProxyHeader("203.0.113.7", 50123, int(NOW), NONCE)),
        (("2001:db8::7", 65535), ("2001:db8::1", 443), ProxyHeader("2001:db8::7", 65535, int(NOW), NONCE)),
        (("2001:db8::7", 1), ("192.0.2.1", 443), ProxyHeader("2001:db8::7", 1, int(NOW), NONCE)),  # mixed families
        (("0.0.0.0", 0), None, ProxyHeader("0.0.0.0", 0, int(NOW), NONCE)),
        (None, ("192.0.2.1", 443), ProxyHeader(None, None, int(NOW), NONCE)),  # no client: the socket's peer
        (("/run/app.sock", 0), None, ProxyHeader(None, None, int(NOW), NONCE)),  # not an IP address
    ],
)
def test_a_built_header_verifies_and_names_the_client(
    client: tuple[str, int] | None, server: tuple[str, int] | None, expected: ProxyHeader
) -> None:
    data = proxy_header(KEY, client, server, now=NOW, nonce=NONCE)
    assert data.startswith(SIGNATURE) and data[12] == 0x21 and len(data) <= 16 + MAX_BODY
    assert verify_proxy_header(data, KEY, NOW) == expected


def test_the_layout_is_haproxy_v2_with_one_application_tlv() -> None:
    data = header()
    assert data[13] == 0x11 and struct.unpack("!H", data[14:16])[0] == len(data) - 16  # TCP over IPv4
    assert data[16:20] == bytes([203, 0, 113, 7]) and struct.unpack("!H", data[24:26])[0] == 50123
    assert data[28:31] == b"\xe0\x00\x38"  # type 0xE0, 56 bytes: timestamp, nonce, HMAC
    assert struct.unpack("!Q", data[31:39])[0] == int(NOW) and data[39:55] == NONCE


def test_each_header_gets_a_fresh_nonce() -> None:
    first, second = (proxy_header(KEY, ("203.0.113.7", 1)) for _ in range(2))
    assert verify_proxy_header(first, KEY, time.time()).nonce != verify_proxy_header(second, KEY, time.time()).nonce


@pytest.mark.parametrize("offset", list(range(12, len(header()))))
def test_any_altered_byte_after_the_signature_is_refused(offset: int) -> None:
    data = bytearray(header())
    data[offset] ^= 0x01
    with pytest.raises(ProxyRefused):
        verify_proxy_header(bytes(data), KEY, NOW)


def test_a_forged_address_without_the_key_is_refused() -> None:
    data = bytearray(header())
    data[16:20] = bytes([127, 0, 0, 1])  # claim to be a local device
    with pytest.raises(ProxyRefused, match="signature does not match"):
        verify_proxy_header(bytes(data), KEY, NOW)
    with pytest.raises(ProxyRefused, match="signature does not match"):
        verify_proxy_header(resign(bytes(data), OTHER_KEY), KEY, NOW)
    assert verify_proxy_header(resign(bytes(data)), KEY, NOW).address == "127.0.0.1"  # only the key makes it


@pytest.mark.parametrize("skew", [MAX_SKEW + 1, -MAX_SKEW - 1, 3600.0, -NOW])
def test_a_stale_or_future_timestamp_is_refused(skew: float) -> None:
    with pytest.raises(ProxyRefused, match="timestamp"):
        verify_proxy_header(header(), KEY, NOW + skew)


@pytest.mark.parametrize("skew", [MAX_SKEW, -MAX_SKEW, 0.5])
def test_a_timestamp_within_the_window_is_believed(skew: float) -> None:
    assert verify_proxy_header(header(), KEY, NOW + skew).address == "203.0.113.7"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        V1_LINE,
        MQTT_CONNECT,
        header()[:-1],  # truncated
        header()[:16],
        header() + b"x",  # more than the length says
        SIGNATURE + b"\x20\x11" + header()[14:],  # LOCAL command
        SIGNATURE + b"\x11\x11" + header()[14:],  # version 1 in the binary form
        SIGNATURE + b"\x21\x12" + header()[14:],  # UDP
        SIGNATURE + b"\x21\x31" + header()[14:],  # AF_UNIX
        SIGNATURE + b"\x21\x11\x01\x01" + b"\x00" * 257,  # above MAX_BODY
    ],
)
def test_malformed_headers_are_refused(data: bytes) -> None:
    with pytest.raises(ProxyRefused):
        verify_proxy_header(data, KEY, NOW)


def signed(family: int, rest: bytes) -> bytes:
    """A header with ``rest`` after the length field and a valid MAC at its end."""
    data = SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(rest) + 32) + rest
    return data + hmac.new(KEY, data, hashlib.sha256).digest()


def test_extra_or_missing_tlvs_are_refused_even_when_signed() -> None:
    addresses, tlv_head, stamp_nonce = header()[16:28], header()[28:31], header()[31:55]
    assert verify_proxy_header(signed(0x11, addresses + tlv_head + stamp_nonce), KEY, NOW).port == 50123
    noop = b"\x04\x00\x01x"  # PP2_TYPE_NOOP
    for rest in (
        addresses + noop + tlv_head + stamp_nonce,  # another TLV first
        addresses + b"\xe1" + tlv_head[1:] + stamp_nonce,  # another application type
        addresses + tlv_head + stamp_nonce + noop,  # something after the timestamp and nonce
        addresses,  # no TLV at all
        addresses[:8] + tlv_head + stamp_nonce,  # addresses cut short
    ):
        with pytest.raises(ProxyRefused):
            verify_proxy_header(signed(0x11, rest), KEY, NOW)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        proxy_header(b"short", ("203.0.113.7", 1))
    with pytest.raises(ValueError, match="32 bytes"):
        verify_proxy_header(header(), b"", NOW)


def stream_of(data: bytes, eof: bool = False) -> asyncio.StreamReader:
    stream = asyncio.StreamReader()
    stream.feed_data(data)
    if eof:
        stream.feed_eof()
    return stream


async def test_read_stops_at_the_end_of_the_header_and_leaves_the_mqtt_bytes() -> None:
    stream = stream_of(header(("2001:db8::7", 9)) + MQTT_CONNECT)
    data = await read_proxy_header(stream, 1.0)
    assert verify_proxy_header(data, KEY, NOW).address == "2001:db8::7"
    assert await stream.readexactly(len(MQTT_CONNECT)) == MQTT_CONNECT


@pytest.mark.parametrize(
    ("start", "reason"),
    [
        (V1_LINE, "PROXY v1 line"),
        (MQTT_CONNECT, "no PROXY v2 header"),  # a client that skipped the header
        (b"\r\n\r\n\x00\r\nQUIT\r", "no PROXY v2 header"),  # wrong last signature byte
        (SIGNATURE + b"\x21\x11\x01\x01", "above 256"),  # body too long: refused unread
        (SIGNATURE + b"\x21\x11\xff\xff", "above 256"),
    ],
)
async def test_read_refuses_at_once_what_cannot_become_a_header(start: bytes, reason: str) -> None:
    stream = stream_of(start)  # more may follow: the reader must not wait for it
    with pytest.raises(ProxyRefused, match=reason):
        await read_proxy_header(stream, 60.0)


async def test_read_never_takes_more_than_the_cap() -> None:
    stream = stream_of(SIGNATURE + b"\x21\x11\x01\x01" + b"x" * 1000)
    with pytest.raises(ProxyRefused):
        await read_proxy_header(stream, 1.0)
    assert len(await stream.read(2000)) == 1000  # the announced body was never read


async def test_read_gives_up_on_eof_or_timeout() -> None:
    with pytest.raises(ProxyRefused, match="ended inside"):
        await read_proxy_header(stream_of(header()[:40], eof=True), 1.0)
    with pytest.raises(ProxyRefused, match="within"):
        await read_proxy_header(stream_of(header()[:40]), 0.01)
    with pytest.raises(ProxyRefused, match="within"):
        await read_proxy_header(asyncio.StreamReader(), 0.01)


def test_a_nonce_is_believed_once_within_the_window() -> None:
    cache = NonceCache()
    assert cache.first_use(NONCE, NOW)
    assert not cache.first_use(NONCE, NOW + 1)  # replayed
    assert cache.first_use(b"n" * 16, NOW + 1)
    assert cache.first_use(NONCE, NOW + 2 * MAX_SKEW + 1)  # long stale by its timestamp: forgotten
    assert len(cache) == 1


def test_the_nonce_cache_is_bounded() -> None:
    cache = NonceCache(limit=3)
    for n in range(10):
        assert cache.first_use(bytes([n]) * 16, NOW)
    assert len(cache) == 3
    assert not cache.first_use(bytes([9]) * 16, NOW)


def test_the_app_and_the_broker_derive_the_same_key_of_its_own_from_the_secret_key() -> None:
    secret = "a-secret-key-long-enough-for-production-0123"
    app_key, broker_key = Secrets(secret).mqtt_proxy_key(), Secrets(secret).mqtt_proxy_key()
    assert verify_proxy_header(proxy_header(app_key, ("203.0.113.7", 1)), broker_key, time.time()).port == 1
    other = Secrets(secret + "x").mqtt_proxy_key()
    with pytest.raises(ProxyRefused):
        verify_proxy_header(proxy_header(other, ("203.0.113.7", 1)), broker_key, time.time())
    assert len(app_key) == 32  # and not the key behind the service password (a distinct label)
    assert base64.urlsafe_b64encode(app_key).decode().rstrip("=") != Secrets(secret).service_password()
