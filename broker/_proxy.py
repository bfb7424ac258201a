"""Signed PROXY protocol v2 headers for the internal listener of the app's MQTT-over-WebSocket bridge.

The bridge accepts the browser's or device's WebSocket, opens a TCP connection to the broker's
proxy listener (127.0.0.1 only) and first sends a binary PROXY protocol v2 header naming the real
client (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt, section 2.2). Any local
process can reach 127.0.0.1, so the header also proves that the bridge wrote it: one
application TLV (type ``0xE0``) holding a timestamp, a random nonce and an HMAC-SHA256 over
every header byte before the MAC, keyed by ``BrokerSettings.proxy_key`` (the app and the broker
derive it from ``OPENBLYNK_SECRET_KEY``)::

    12  signature  \\r\\n\\r\\n\\0\\r\\nQUIT\\n
     1  0x21                 version 2, command PROXY
     1  0x11 / 0x21 / 0x00   TCP over IPv4 / IPv6 / unspecified (then the socket's peer is used)
     2  length of the rest (at most MAX_BODY, or the header is refused unread)
    12 / 36 / 0             source and destination address, source and destination port
     3  0xE0, length 56
     8  timestamp, Unix seconds
    16  nonce
    32  HMAC-SHA256(key, every byte above)

The broker closes the connection (no CONNACK, no login counted against any address) when the
header is missing, a v1 line, malformed, signed with another key, more than MAX_SKEW seconds
away from its clock, or a replay of one already accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import os
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = [
    "MAX_BODY",
    "MAX_SKEW",
    "MIN_KEY_BYTES",
    "NonceCache",
    "ProxyHeader",
    "ProxyRefused",
    "proxy_header",
    "read_proxy_header",
    "verify_proxy_header",
]

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
MAX_BODY = 256
"""Largest length field accepted; a header announcing more is refused before it is read."""
MAX_SKEW = 30.0
"""Seconds a header's timestamp may differ from the broker's clock."""
MIN_KEY_BYTES = 32
_PROXY_V2 = 0x21
_UNSPEC, _TCP4, _TCP6 = 0x00, 0x11, 0x21
_ADDRESS_BYTES = {_UNSPEC: 0, _TCP4: 12, _TCP6: 36}
_TLV_TYPE = 0xE0  # PP2_TYPE_MIN_CUSTOM: application-specific
_NONCE, _MAC = 16, 32
_TLV_VALUE = 8 + _NONCE + _MAC
_TLV_HEAD = struct.pack("!BH", _TLV_TYPE, _TLV_VALUE)


class ProxyRefused(Exception):
    """A PROXY header the broker does not believe; the message says why and holds no secret."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a verified header said; ``address``/``port`` are ``None`` for an unspecified family."""

    address: str | None
    port: int | None
    timestamp: int
    nonce: bytes = field(repr=False)


def _check_key(key: bytes) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"a PROXY header key needs at least {MIN_KEY_BYTES} bytes")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _addresses(client: tuple[str, int] | None, server: tuple[str, int | None] | None) -> tuple[int, bytes]:
    """The family byte and address block for ``client`` (unspecified if it is not an IP)."""
    source = _ip(client[0]) if client is not None and 0 <= client[1] <= 65535 else None
    if client is None or source is None:
        return _UNSPEC, b""
    destination = _ip(server[0]) if server is not None else None
    destination_port = (server[1] or 0) if server is not None else 0
    if destination is None or destination.version != source.version or not 0 <= destination_port <= 65535:
        destination = ipaddress.ip_address("127.0.0.1" if source.version == 4 else "::1")
        destination_port = 0
    family = _TCP4 if source.version == 4 else _TCP6
    return family, source.packed + destination.packed + struct.pack("!HH", client[1], destination_port)


def proxy_header(
    key: bytes,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None = None,
    *,
    now: float | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """The signed PROXY v2 header the WebSocket bridge sends before the client's MQTT bytes.

    Args:
        key: ``BrokerSettings.proxy_key`` of the broker (at least 32 bytes).
        client: the WebSocket client's (address, port); not an IP address (a Unix socket,
            ``None``) sends the unspecified family, and the broker keeps the socket's peer.
        server: the address the client reached (reported to the broker, not trusted by it).
        now: the timestamp to sign (default: the current time; tests pass others).
        nonce: 16 bytes (default: random; tests pass their own).

    Returns:
        The header bytes, at most 111.
    """
    _check_key(key)
    family, addresses = _addresses(client, server)
    nonce = os.urandom(_NONCE) if nonce is None else nonce
    if len(nonce) != _NONCE:
        raise ValueError(f"a nonce is {_NONCE} bytes")
    stamp = int(time.time() if now is None else now)
    body = addresses + _TLV_HEAD + struct.pack("!Q", stamp) + nonce
    signed = SIGNATURE + struct.pack("!BBH", _PROXY_V2, family, len(body) + _MAC) + body
    return signed + hmac.new(key, signed, hashlib.sha256).digest()


def verify_proxy_header(data: bytes, key: bytes, now: float) -> ProxyHeader:
    """Check one whole header (as :func:`read_proxy_header` returns it) and say what it names.

    Raises:
        ProxyRefused: malformed, signed with another key, or ``MAX_SKEW`` seconds off ``now``.
    """
    _check_key(key)
    if len(data) < 16 or not data.startswith(SIGNATURE):
        raise ProxyRefused("not a PROXY v2 header")
    version, family, length = struct.unpack_from("!BBH", data, 12)
    if version != _PROXY_V2:
        raise ProxyRefused(f"PROXY v2 version/command byte 0x{version:02x} is not 0x21")
    if family not in _ADDRESS_BYTES:
        raise ProxyRefused(f"PROXY v2 family 0x{family:02x} is not TCP4, TCP6 or unspecified")
    if length > MAX_BODY or len(data) != 16 + length:
        raise ProxyRefused(f"PROXY v2 length {length} does not fit the {len(data)} bytes read")
    size = _ADDRESS_BYTES[family]
    if length != size + len(_TLV_HEAD) + _TLV_VALUE or data[16 + size : 16 + size + 3] != _TLV_HEAD:
        raise ProxyRefused("PROXY v2 header without exactly one signature TLV (0xE0)")
    expected = hmac.new(key, data[:-_MAC], hashlib.sha256).digest()
    if not hmac.compare_digest(expected, data[-_MAC:]):
        raise ProxyRefused("PROXY v2 signature does not match (another key, or altered)")
    (stamp,) = struct.unpack_from("!Q", data, 16 + size + 3)
    if abs(now - stamp) > MAX_SKEW:
        raise ProxyRefused(f"PROXY v2 timestamp {stamp} is more than {MAX_SKEW:.0f} s from now")
    nonce = data[-_MAC - _NONCE : -_MAC]
    if family == _UNSPEC:
        return ProxyHeader(None, None, stamp, nonce)
    half = (size - 4) // 2
    source = ipaddress.ip_address(data[16 : 16 + half])
    (port,) = struct.unpack_from("!H", data, 16 + size - 4)
    return ProxyHeader(str(source), port, stamp, nonce)


async def read_proxy_header(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Read exactly one PROXY v2 header's bytes within ``timeout`` (not checking its signature).

    Refuses as soon as the bytes cannot be such a header (a v1 line, MQTT without a header) and
    before reading a body longer than :data:`MAX_BODY`, so nobody waits for the timeout for what
    is already wrong. Never reads past the header: the MQTT bytes behind it stay in ``reader``.

    Raises:
        ProxyRefused: what went wrong.
    """
    head = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while len(head) < len(SIGNATURE):
                head += await reader.readexactly(1)
                if not SIGNATURE.startswith(head):
                    kind = "a PROXY v1 line" if head[0:1] == b"P" else "no PROXY v2 header"
                    raise ProxyRefused(f"{kind} (the bridge sends a signed v2 header)")
            head += await reader.readexactly(4)
            (length,) = struct.unpack_from("!H", head, 14)
            if length > MAX_BODY:
                raise ProxyRefused(f"PROXY v2 length {length} above {MAX_BODY}")
            return bytes(head) + await reader.readexactly(length)
    except TimeoutError:
        raise ProxyRefused(f"no complete PROXY v2 header within {timeout:g} s") from None
    except asyncio.IncompleteReadError:
        raise ProxyRefused("connection ended inside the PROXY header") from None
    except OSError as exc:  # ConnectionError included
        raise ProxyRefused(f"connection failed while reading the PROXY header ({type(exc).__name__})") from None


class NonceCache:
    """Nonces of accepted headers, so that each header is believed once.

    A nonce is kept for ``2 * MAX_SKEW`` seconds after it was accepted: by then its timestamp
    is stale anyway. At most ``limit`` are kept; past it the oldest are forgotten first.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def first_use(self, nonce: bytes, now: float) -> bool:
        """Remember ``nonce``; False if it was already accepted within the window."""
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now and len(self._seen) < self._limit:
                break
            del self._seen[oldest]
        if nonce in self._seen:
            return False
        self._seen[nonce] = now + 2 * MAX_SKEW
        return True

    def __len__(self) -> int:
        return len(self._seen)
