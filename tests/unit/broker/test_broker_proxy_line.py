"""PROXY protocol v1 lines: what is accepted, what is refused, and that MQTT bytes stay unread."""

from __future__ import annotations

import asyncio

import pytest

from broker._proxy import MAX_LINE, ProxyHeader, parse_proxy_line, read_proxy_line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\r\n", ProxyHeader("203.0.113.7", 50123)),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 443\r\n", ProxyHeader("2001:db8::7", 65535)),
        (b"PROXY UNKNOWN\r\n", ProxyHeader(None, None)),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", ProxyHeader(None, None)),
        (b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", ProxyHeader("0.0.0.0", 0)),
    ],
)
def test_valid_lines(line: bytes, expected: ProxyHeader) -> None:
    assert parse_proxy_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\n",  # LF only
        b"PROXY TCP4 203.0.113.7 192.0.2.1 50123\r\n",  # missing field
        b"PROXY TCP4 2001:db8::7 192.0.2.1 50123 443\r\n",  # v6 address in TCP4
        b"PROXY TCP6 203.0.113.7 2001:db8::1 50123 443\r\n",  # v4 address in TCP6
        b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 443\r\n",  # port out of range
        b"PROXY TCP4 203.0.113.7 192.0.2.1 050123 443\r\n",  # leading zero
        b"PROXY TCP4 203.0.113.7 192.0.2.1 -1 443\r\n",
        b"PROXY TCP4  203.0.113.7 192.0.2.1 50123 443\r\n",  # double space
        b"PROXY UDP4 203.0.113.7 192.0.2.1 50123 443\r\n",
        b"proxy TCP4 203.0.113.7 192.0.2.1 50123 443\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 5\xc3\xa9 443\r\n",  # not ASCII
        b"\x10\x1e\x00\x04MQTT\x04\x02\x00<\r\n",  # MQTT without the PROXY line
        b"PROXY UNKNOWN " + b"x" * MAX_LINE + b"\r\n",  # too long
        b"",
    ],
)
def test_invalid_lines(line: bytes) -> None:
    assert parse_proxy_line(line) is None


async def test_read_stops_at_crlf_and_leaves_the_rest() -> None:
    stream = asyncio.StreamReader()
    stream.feed_data(b"PROXY UNKNOWN\r\n\x10\x00rest")
    assert await read_proxy_line(stream, 1.0) == b"PROXY UNKNOWN\r\n"
    assert await stream.readexactly(6) == b"\x10\x00rest"


async def test_read_gives_up_after_max_line_eof_or_timeout() -> None:
    long = asyncio.StreamReader()
    long.feed_data(b"PROXY " + b"x" * 500)
    assert await read_proxy_line(long, 1.0) is None
    assert len(await long.read(1000)) == 506 - MAX_LINE  # never read past the limit
    ended = asyncio.StreamReader()
    ended.feed_data(b"PROXY TCP4")
    ended.feed_eof()
    assert await read_proxy_line(ended, 1.0) is None
    silent = asyncio.StreamReader()
    assert await read_proxy_line(silent, 0.01) is None


@pytest.mark.parametrize(
    "start",
    [
        b"\x10\x1e\x00\x04MQTT",  # a client that skipped the PROXY line
        b"PROXY TCP4 203.0.113.7 192.0.2.1 50123 443\n",  # bare LF
        b"PROXY TCP4 203.0.113.7\r 192.0.2.1",  # CR not before LF
        b"PROXY TCP4 203.0.113.7 \x10",  # binary byte
    ],
)
async def test_read_refuses_what_cannot_become_a_line_without_waiting(start: bytes) -> None:
    stream = asyncio.StreamReader()
    stream.feed_data(start)  # more may follow: the reader must not wait for it
    assert await read_proxy_line(stream, 60.0) is None
