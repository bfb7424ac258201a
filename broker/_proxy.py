"""PROXY protocol v1 for the internal listener of the app's MQTT-over-WebSocket bridge.

The bridge accepts the browser's or device's WebSocket, opens a TCP connection to the broker's
proxy listener (127.0.0.1 only) and first sends one line naming the real client
(https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt, section 2.1)::

    PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\\r\\n
    PROXY TCP6 2001:db8::7 2001:db8::1 50123 443\\r\\n
    PROXY UNKNOWN\\r\\n            (anything may follow UNKNOWN; the socket's own peer is used)

At most 107 bytes including CRLF. A missing or malformed line closes the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

__all__ = ["MAX_LINE", "ProxyHeader", "parse_proxy_line", "read_proxy_line"]

MAX_LINE = 107
_PREFIX = b"PROXY "


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a PROXY line said; ``address``/``port`` are ``None`` for ``UNKNOWN``."""

    address: str | None
    port: int | None


def _port(text: str) -> int | None:
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[0] == "0"):
        return None
    value = int(text)
    return value if value <= 65535 else None


def parse_proxy_line(line: bytes) -> ProxyHeader | None:
    """Parse one PROXY v1 line (CRLF included); ``None`` if it is not a valid one."""
    if len(line) > MAX_LINE or not line.startswith(_PREFIX) or not line.endswith(b"\r\n"):
        return None
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError:
        return None
    if "\r" in text or "\n" in text:
        return None
    fields = text.split(" ")
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(None, None)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        return None
    family = ipaddress.IPv4Address if fields[1] == "TCP4" else ipaddress.IPv6Address
    try:
        source, _ = family(fields[2]), family(fields[3])
    except ValueError:
        return None
    source_port, destination_port = _port(fields[4]), _port(fields[5])
    if source_port is None or destination_port is None:
        return None
    return ProxyHeader(str(source), source_port)


def _hopeless(line: bytearray) -> bool:
    """Whether the bytes read so far can no longer become a PROXY v1 line (checks the last byte)."""
    if len(line) <= len(_PREFIX):
        return not _PREFIX.startswith(line)
    last = line[-1]
    if last == 0x0A:  # LF only after CR
        return line[-2] != 0x0D
    if line[-2] == 0x0D:  # CR only before LF
        return True
    return last != 0x0D and not 0x20 <= last <= 0x7E


async def read_proxy_line(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """Read up to and including the first CRLF, at most :data:`MAX_LINE` bytes, in ``timeout``.

    ``None`` on EOF, timeout, no CRLF within the limit, or as soon as the bytes cannot be such a
    line (a client that skipped it, a bare LF, a binary byte): nobody is kept waiting for the
    timeout by what is already wrong. Never reads past the line,
    so the MQTT bytes behind it stay in ``reader``.
    """
    line = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while len(line) < MAX_LINE:
                line += await reader.readexactly(1)
                if _hopeless(line):
                    return None
                if line.endswith(b"\r\n"):
                    return bytes(line)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError):
        return None
    return None
