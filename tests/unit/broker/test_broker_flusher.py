"""MeteredWriter: what connections write in one turn leaves at the end of it, one write per
connection, all flushed by one callback; one connection's failing flush keeps nobody else's
bytes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from unittest import mock

import pytest

from broker._transport import Meter, MeteredWriter, _Flusher


@pytest.fixture
async def pairs() -> AsyncIterator[list[tuple[MeteredWriter, asyncio.StreamReader, asyncio.StreamWriter]]]:
    """Three loopback connections: (the server side's MeteredWriter, the client's reader)."""
    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def on_client(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(writer)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    made = []
    for _ in range(3):
        reader, client = await asyncio.open_connection("127.0.0.1", port)
        made.append((MeteredWriter(await accepted.get(), Meter()), reader, client))
    yield made
    for metered, _reader, client in made:
        metered.abort()
        client.close()
    server.close()
    await server.wait_closed()


async def test_a_turns_writes_leave_together_through_one_callback(
    pairs: list[tuple[MeteredWriter, asyncio.StreamReader, asyncio.StreamWriter]],
) -> None:
    runs, writes = 0, []
    run = _Flusher._run

    def counted(self: _Flusher) -> None:
        nonlocal runs
        runs += 1
        run(self)

    with mock.patch.object(_Flusher, "_run", counted):
        for n, (metered, _reader, _client) in enumerate(pairs):
            inner = metered._writer.write
            metered._writer.write = lambda data, inner=inner: (writes.append(data), inner(data))  # type: ignore[method-assign]
            metered.write(b"\x20\x02\x00\x00")
            metered.write(bytes((0x90, 3, 0, n + 1, 1)))
        assert writes == []  # held until the end of the turn
        for n, (_metered, reader, _client) in enumerate(pairs):
            assert await asyncio.wait_for(reader.readexactly(9), 5) == b"\x20\x02\x00\x00" + bytes(
                (0x90, 3, 0, n + 1, 1)
            )
    assert runs == 1 and len(writes) == 3  # one callback, one write a connection
    assert [m.meter.bytes_out for m, _r, _c in pairs] == [9, 9, 9]


async def test_one_connections_failure_keeps_nobody_elses_bytes(
    pairs: list[tuple[MeteredWriter, asyncio.StreamReader, asyncio.StreamWriter]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = pairs[0][0]

    def fail(_data: bytes) -> None:
        raise ValueError("a bug in one connection's writer")

    broken._writer.write = fail  # type: ignore[method-assign]
    for metered, _reader, _client in pairs:
        metered.write(b"\xd0\x00")
    with caplog.at_level(logging.ERROR, logger="broker._transport"):
        for _metered, reader, _client in pairs[1:]:
            assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\xd0\x00"
    assert "flushing a connection failed" in caplog.text
    pairs[1][0].write(b"\xd0\x00")  # the flusher goes on working after the failure
    assert await asyncio.wait_for(pairs[1][1].readexactly(2), 5) == b"\xd0\x00"
