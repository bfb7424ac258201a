"""The broker's side of a client socket: byte/message counters and a writer that cannot hang.

amqtt's ``StreamWriterAdapter.close()`` drains before closing, so closing a client that stopped
reading waits forever (the broker's ``stop()`` too). :class:`MeteredWriter` drains for at most
a second and then aborts the socket. It also counts what is written, for ``sys/vitals``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import cast

from amqtt.adapters import ReaderAdapter, WriterAdapter

__all__ = ["CLOSE_WAIT", "Meter", "MeteredWriter", "StreamReader"]

CLOSE_WAIT = 1.0  # seconds a closing connection may take to flush what is still buffered
_PUBLISH = 3  # MQTT control packet type of PUBLISH (first byte >> 4)


@dataclass(slots=True)
class Meter:
    """Traffic of one connection: PUBLISH packets and bytes of whole packets, both ways."""

    msgs_in: int = 0
    msgs_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    def count_in(self, frame: bytes) -> None:
        """Account one whole packet received."""
        self.bytes_in += len(frame)
        if frame and frame[0] >> 4 == _PUBLISH:
            self.msgs_in += 1

    def count_out(self, data: bytes | bytearray) -> None:
        """Account one whole packet written (amqtt writes each packet with one ``write``)."""
        self.bytes_out += len(data)
        if data and data[0] >> 4 == _PUBLISH:
            self.msgs_out += 1

    def snapshot(self) -> dict[str, int]:
        """The counters plus ``connected_for_s`` (whole seconds since the connection opened)."""
        elapsed = asyncio.get_running_loop().time() - self.started
        return {
            "msgs_in": self.msgs_in,
            "msgs_out": self.msgs_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "connected_for_s": int(elapsed),
        }


class MeteredWriter(WriterAdapter):
    """amqtt ``WriterAdapter`` over an asyncio ``StreamWriter``: counts, and closes in bounded time."""

    def __init__(self, writer: asyncio.StreamWriter, meter: Meter) -> None:
        self._writer = writer
        self.meter = meter
        self.closed = False
        peer = writer.get_extra_info("peername")
        self.peer: tuple[str, int] | None = (peer[0], peer[1]) if peer and len(peer) >= 2 else None
        """The client's address; replaced by the PROXY header's on the proxy listener."""
        self.encode: Callable[[bytes | bytearray], bytes | bytearray] | None = None
        """Turns what the broker writes into the client's protocol (MQTT 5: ``broker._v5``)."""
        self.last_words: Callable[[], bytes] | None = None
        """Called once when the connection is closed (not aborted): what to send before closing
        (an MQTT 5 client's DISCONNECT with the reason, ``broker._v5``)."""

    def write(self, data: bytes | bytearray) -> None:
        """Queue one packet for sending (no-op once closed)."""
        if not self.closed:
            if self.encode is not None:
                data = self.encode(data)
            self.meter.count_out(data)
            self._writer.write(data)

    async def drain(self) -> None:
        """Wait until the socket's send buffer is below its high-water mark."""
        if not self.closed:
            await self._writer.drain()

    async def wait_writable(self) -> None:
        """Like :meth:`drain`, but only awaits anything when the buffer is above high water.

        The reader calls this before each packet, so a client that does not read what it is
        sent is not read from either (TCP pushes back instead of tasks piling up).
        """
        transport = self._writer.transport
        if not self.closed and transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
            await self._writer.drain()

    @property
    def buffered(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        return self._writer.transport.get_write_buffer_size()

    def get_peer_info(self) -> tuple[str, int] | None:
        """The client's (address, port)."""
        return self.peer

    def get_ssl_info(self) -> ssl.SSLObject | None:
        """The TLS object of a TLS connection, else ``None``."""
        return cast("ssl.SSLObject | None", self._writer.get_extra_info("ssl_object"))

    async def close(self) -> None:
        """Flush for at most :data:`CLOSE_WAIT` seconds, then close (or abort) the socket."""
        if self.closed:
            return
        if self.last_words is not None:
            words, self.last_words = self.last_words(), None
            if words:
                self.write(words)
        self.closed = True
        try:
            async with asyncio.timeout(CLOSE_WAIT):
                await self._writer.drain()
                if self._writer.can_write_eof():
                    self._writer.write_eof()
                self._writer.close()
                await self._writer.wait_closed()
        except (TimeoutError, OSError, RuntimeError):
            self.abort()

    def abort(self) -> None:
        """Drop the connection at once, discarding anything unsent."""
        self.closed = True
        with suppress(OSError, RuntimeError):
            self._writer.transport.abort()


class StreamReader(ReaderAdapter):
    """amqtt ``ReaderAdapter`` over an asyncio ``StreamReader`` that exposes the stream itself
    (the proxy listener reads its PROXY header from it before any MQTT)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream

    async def read(self, n: int = -1) -> bytes:
        """``n`` bytes exactly (``IncompleteReadError`` at EOF), or everything up to EOF."""
        if n == -1:
            return await self.stream.read(n)
        return await self.stream.readexactly(n)

    def feed_eof(self) -> None:
        """Mark the stream as ended."""
        self.stream.feed_eof()
