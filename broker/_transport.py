"""The broker's side of a client socket: byte/message counters and a writer that cannot hang.

amqtt's ``StreamWriterAdapter.close()`` drains before closing, so closing a client that stopped
reading waits forever (the broker's ``stop()`` too). :class:`MeteredWriter` drains for at most
a second and then aborts the socket. It also counts what is written, for ``sys/vitals``.

Batched writes: amqtt writes each packet with its own ``write`` (a ``send`` system call each:
a sixth of the broker's time under load, by py-spy). :class:`MeteredWriter` keeps what is
written during one turn of the event loop and hands it to the socket in one piece at the start
of the next turn (or at once past :data:`BATCH_BYTES`); order is kept, and ``drain``,
``close`` and the write-buffer checks count what is still held.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, cast

from amqtt.adapters import ReaderAdapter, WriterAdapter

__all__ = [
    "BATCH_BYTES",
    "CLOSE_WAIT",
    "FastStream",
    "Meter",
    "MeteredWriter",
    "StreamProtocol",
    "StreamReader",
    "frame_end",
]

logger = logging.getLogger(__name__)

CLOSE_WAIT = 1.0  # seconds a closing connection may take to flush what is still buffered
BATCH_BYTES = 65_536  # bytes held for one write at most; more is handed to the socket at once
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


class _Flusher:
    """The writers of one event loop that hold packets this turn, flushed by one callback.

    A callback per writer and turn (``call_soon``, a handle each) was a twentieth of the
    broker's time in a storm of connects, where each connection writes CONNACK, then SUBACK,
    in turns of their own (README "Performance")."""

    __slots__ = ("_loop", "_scheduled", "_writers")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._writers: list[MeteredWriter] = []
        self._scheduled = False

    def add(self, writer: MeteredWriter) -> None:
        """Flush ``writer`` at the end of this turn, with the others."""
        self._writers.append(writer)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        writers, self._writers = self._writers, []
        self._scheduled = False
        for writer in writers:
            writer._queued = False
            try:
                writer.flush()
            except Exception:  # one connection's failure must not keep the others' bytes
                logger.exception("flushing a connection failed")


_FLUSHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = weakref.WeakKeyDictionary()


def _flusher() -> _Flusher:
    loop = asyncio.get_running_loop()
    flusher = _FLUSHERS.get(loop)
    if flusher is None:
        flusher = _FLUSHERS[loop] = _Flusher(loop)
    return flusher


class MeteredWriter(WriterAdapter):
    """amqtt ``WriterAdapter`` over an asyncio ``StreamWriter``: counts, and closes in bounded time."""

    __slots__ = (
        "_flusher",
        "_held",
        "_held_size",
        "_high_water",
        "_queued",
        "_transport",
        "_writer",
        "closed",
        "encode",
        "last_words",
        "linger",
        "meter",
        "peer",
    )  # one of each connection: slots keep it small (README "Performance")

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
        self.linger = 0.0
        """Seconds the socket stays open (its input ignored) after the last words, so that a
        client still answering what came before them reads them (MQTT 5 0x93, ``broker._v5``)."""
        self._transport = writer.transport
        self._high_water = self._transport.get_write_buffer_limits()[1]  # nothing here changes it
        self._held: list[bytes | bytearray] = []
        self._held_size = 0
        self._flusher = _flusher()
        self._queued = False
        """Whether the loop's flusher has this writer for the end of the turn."""

    def write(self, data: bytes | bytearray) -> None:
        """Queue one packet for sending (no-op once closed); it leaves with the turn's others."""
        if self.closed:
            return
        if self.encode is not None:
            data = self.encode(data)
        self.meter.count_out(data)
        self._held.append(data if isinstance(data, bytes) else bytes(data))
        self._held_size += len(data)
        if self._held_size >= BATCH_BYTES:
            self.flush()
        elif not self._queued:
            self._queued = True
            self._flusher.add(self)

    def flush(self) -> None:
        """Hand everything held to the socket now, as one write."""
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        self._held_size = 0
        if not self.closed:
            with suppress(OSError, RuntimeError):  # a broken socket: the reader sees its end
                self._writer.write(data)

    async def drain(self) -> None:
        """Wait until the socket's send buffer is below its high-water mark."""
        if self.closed:
            return
        if self._transport.is_closing() or self.buffered > self._high_water:
            self.flush()
            await self._writer.drain()  # raises if the connection was lost, as amqtt expects

    async def wait_writable(self) -> None:
        """Like :meth:`drain`, but only awaits anything when the buffer is above high water.

        The reader calls this before each packet, so a client that does not read what it is
        sent is not read from either (TCP pushes back instead of tasks piling up).
        """
        if not self.closed and self.buffered > self._high_water:
            self.flush()
            await self._writer.drain()

    def writable(self) -> bool:
        """True while :meth:`wait_writable` would not wait."""
        return self.closed or self.buffered <= self._high_water

    @property
    def buffered(self) -> int:
        """Bytes written but not yet handed to the kernel (held here or in the transport)."""
        return self._held_size + self._transport.get_write_buffer_size()

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
        self.flush()
        self.closed = True
        try:
            async with asyncio.timeout(CLOSE_WAIT + self.linger):
                await self._writer.drain()
                if self._writer.can_write_eof():
                    self._writer.write_eof()
                if self.linger:
                    await asyncio.sleep(self.linger)
                self._writer.close()
                await self._writer.wait_closed()
        except (TimeoutError, OSError, RuntimeError):
            self.abort()

    def abort(self) -> None:
        """Drop the connection at once, discarding anything unsent."""
        self.closed = True
        self._held.clear()
        self._held_size = 0
        with suppress(OSError, RuntimeError):
            self._writer.transport.abort()


class FastStream(asyncio.StreamReader):
    """The socket's ``asyncio.StreamReader``, which first offers what arrives to :attr:`receive`.

    ``StreamReaderProtocol.data_received`` hands every piece the socket gave to
    :meth:`feed_data`. While :attr:`receive` is set and nothing waits in the buffer, the piece
    goes to it first, in the same call: the broker handles the whole packets it can there, as
    they arrive (``FramedReader.receive``), and only the rest is buffered for amqtt's reader.
    Under load that spares every packet a wake-up of the reader task, its chain of awaits and
    a copy through the buffer.
    """

    __slots__ = ("receive", "wake")  # beside asyncio's __dict__: setting them does not grow it

    receive: Callable[[bytes], bytes] | None
    """Takes the packets it handles at once and returns what is left to buffer, in order."""
    wake: Callable[[], None] | None
    """Called (then cleared) when data is buffered, the stream ends or fails: a parked reader
    (``FramedReader.park``) has no task waiting for that, so it is started again."""

    def __init__(self, limit: int = 2**16, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(limit, loop)
        self.receive = None
        self.wake = None

    def feed_data(self, data: bytes) -> None:  # type: ignore[override]  # a socket gives bytes
        """Offer ``data`` to :attr:`receive` first (see class docstring), buffer the rest."""
        if self._eof:  # type: ignore[attr-defined]
            return  # the broker ended the connection (receive): the rest is not read
        receive = self.receive
        if receive is not None and not self._buffer:  # type: ignore[attr-defined]
            data = receive(data)
            if not data:
                return
        super().feed_data(data)
        if self.wake is not None:
            self._wake()

    def feed_eof(self) -> None:
        """Mark the end of the stream, and wake a parked reader."""
        super().feed_eof()
        self._wake()

    def set_exception(self, exc: Exception) -> None:
        """Fail the stream (connection lost), and wake a parked reader."""
        super().set_exception(exc)
        self._wake()

    def pending(self) -> bool:
        """True if a reader would not wait: data is buffered, or the stream ended or failed."""
        return bool(self._buffer or self._eof or self._exception)  # type: ignore[attr-defined]

    def _wake(self) -> None:
        wake, self.wake = self.wake, None
        if wake is not None:
            wake()


class StreamProtocol(asyncio.StreamReaderProtocol):
    """asyncio's ``StreamReaderProtocol``, lighter on an idle connection (README "Performance").

    Its writers waiting for the socket to drain are kept in a list: asyncio makes it a deque,
    760 bytes on each connection for a list that is nearly always empty (it only appends,
    removes and iterates). And the task that served the connection is let go once it is done
    (a parked connection's task ends after CONNACK): asyncio keeps it, and its coroutine,
    until the connection is lost.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drain_waiters: list[asyncio.Future[None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio's, then: forget the serving task when it is done."""
        super().connection_made(transport)
        task: asyncio.Task[None] | None = getattr(self, "_task", None)
        if task is not None:
            task.add_done_callback(self._served)

    def _served(self, task: asyncio.Task[None]) -> None:
        if getattr(self, "_task", None) is task:
            self._task = None


def frame_end(data: bytes | bytearray, pos: int, max_size: int) -> int | None:
    """Where the MQTT packet starting at ``data[pos]`` ends, if ``data`` holds all of it and
    its remaining length is readable (at most four bytes) and at most ``max_size``; else None."""
    size, length, multiplier, index = len(data), 0, 1, pos + 1
    while True:
        if index >= size or index > pos + 4:
            return None
        byte = data[index]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        index += 1
        if not byte & 0x80:
            break
    end = index + length
    return end if end <= size and length <= max_size else None


class StreamReader(ReaderAdapter):
    """amqtt ``ReaderAdapter`` over an asyncio ``StreamReader`` that exposes the stream itself
    (the proxy listener reads its PROXY header from it before any MQTT)."""

    __slots__ = ("stream",)

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

    def take_packet(self, max_size: int) -> bytes | None:
        """One whole MQTT packet, if the stream's buffer already holds it (then consumed), else
        ``None`` with nothing consumed: also for a packet above ``max_size`` or a malformed
        length, which the caller's careful path reads and refuses.

        No await, no timer: under load most packets are already buffered when asked for, and
        reading them through ``readexactly`` under a keep-alive timeout cost a tenth of the
        broker's time. Reads asyncio's ``StreamReader`` buffer (a private attribute, stable in
        CPython 3.11-3.13 and used by uvloop too, whose streams are asyncio's).
        """
        buffer: bytearray | None = getattr(self.stream, "_buffer", None)
        if buffer is None or (end := frame_end(buffer, 0, max_size)) is None:
            return None
        packet = bytes(buffer[:end])
        del buffer[:end]
        resume = getattr(self.stream, "_maybe_resume_transport", None)
        if resume is not None:
            resume()  # reading was paused while the buffer was full: go on
        return packet
