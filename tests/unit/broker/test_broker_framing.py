"""FramedReader: size limit before reading the body, keep-alive deadline, malformed frames."""

from __future__ import annotations

import asyncio

import pytest
from amqtt.adapters import ReaderAdapter

from broker._framing import FramedReader, FrameFailure


class ScriptedReader(ReaderAdapter):
    """Serves bytes from a buffer; counts how many bytes were asked for."""

    def __init__(self, data: bytes, then_block: bool = False) -> None:
        self.data, self.pos, self.then_block, self.requested = data, 0, then_block, 0

    async def read(self, n: int = -1) -> bytes:
        self.requested += n
        if self.pos + n > len(self.data):
            if self.then_block:
                await asyncio.Event().wait()
            raise asyncio.IncompleteReadError(self.data[self.pos :], n)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def feed_eof(self) -> None:
        pass


async def test_whole_packets_are_served_in_pieces() -> None:
    frames = bytes([0x30, 3, 0, 1, 0x61]) + bytes([0xC0, 0])
    reader = FramedReader(ScriptedReader(frames), max_packet_size=10, connect_timeout=5)
    reader.start_keepalive(keep_alive=0, grace=1.5)
    assert await reader.read(1) == b"\x30"
    assert await reader.read(1) == b"\x03"
    assert await reader.read(3) == b"\x00\x01a"
    assert await reader.read(2) == b"\xc0\x00"
    assert await reader.read(1) == b"" and reader.failure is None  # clean EOF


async def test_first_packet_must_be_connect() -> None:
    inner = ScriptedReader(b"GET / HTTP/1.1\r\n", then_block=True)
    reader = FramedReader(inner, max_packet_size=1024, connect_timeout=5)
    assert await reader.read(1) == b""
    assert reader.failure is FrameFailure.MALFORMED and inner.requested == 1


async def test_oversized_connect_is_refused_before_its_body_is_read() -> None:
    header = bytes([0x10, 0x80, 0x80, 0x80, 0x01])
    inner = ScriptedReader(header, then_block=True)
    reader = FramedReader(inner, max_packet_size=1024, connect_timeout=5)
    assert await reader.read(1) == b""
    assert reader.failure is FrameFailure.PACKET_TOO_LARGE and inner.requested == len(header)


async def test_oversized_packet_is_refused_before_its_body_is_read() -> None:
    header = bytes([0x30, 0xFF, 0xFF, 0xFF, 0x7F])  # declares 268 MB
    inner = ScriptedReader(header + b"x" * 100)
    reader = FramedReader(inner, max_packet_size=1024, connect_timeout=5)
    reader.start_keepalive(keep_alive=0, grace=1.5)
    assert await reader.read(1) == b""
    assert reader.failure is FrameFailure.PACKET_TOO_LARGE
    assert reader.declared_length == 268_435_455
    assert inner.requested == len(header)


async def test_silence_past_the_keepalive_deadline_ends_the_stream() -> None:
    reader = FramedReader(ScriptedReader(b"", then_block=True), max_packet_size=10, connect_timeout=5)
    reader.start_keepalive(keep_alive=1, grace=0.05 / 1)  # deadline 0.05 s
    assert await reader.read(1) == b""
    assert reader.failure is FrameFailure.KEEPALIVE_TIMEOUT


async def test_the_keepalive_deadline_is_one_and_a_half_keepalives(monkeypatch: pytest.MonkeyPatch) -> None:
    """[MQTT-3.1.2-24] on a loop clock the test moves: still open just before 1.5 × keep-alive
    of silence, closed just after (whatever the machine's speed)."""
    loop = asyncio.get_running_loop()
    now = [loop.time()]
    monkeypatch.setattr(loop, "time", lambda: now[0])
    reader = FramedReader(ScriptedReader(b"", then_block=True), max_packet_size=10, connect_timeout=5)
    reader.start_keepalive(keep_alive=10, grace=1.5)
    read = asyncio.create_task(reader.read(1))

    async def run_due() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    now[0] += 14.9
    await run_due()
    assert not read.done() and reader.failure is None
    now[0] += 0.2
    await run_due()
    assert read.done() and read.result() == b""
    assert reader.failure is FrameFailure.KEEPALIVE_TIMEOUT


async def test_decoder_reading_past_the_frame_is_malformed() -> None:
    reader = FramedReader(ScriptedReader(bytes([0x30, 1, 0])), max_packet_size=10, connect_timeout=5)
    reader.start_keepalive(keep_alive=0, grace=1.5)
    assert await reader.read(2) == b"\x30\x01"
    assert await reader.read(2) == b""
    assert reader.failure is FrameFailure.MALFORMED


async def test_five_length_bytes_are_malformed() -> None:
    data = bytes([0x30, 0x80, 0x80, 0x80, 0x80, 0x01])
    reader = FramedReader(ScriptedReader(data), max_packet_size=10, connect_timeout=5)
    reader.start_keepalive(keep_alive=0, grace=1.5)
    assert await reader.read(1) == b""
    assert reader.failure is FrameFailure.MALFORMED
