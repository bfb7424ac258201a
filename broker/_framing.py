"""A reader adapter that hands amqtt whole MQTT packets, after checking size and silence.

amqtt decodes packets by calling ``reader.read(n)`` many times; it reads the fixed header, then
as much body as the remaining length says -- up to 256 MB, straight into memory -- and it
never enforces keep-alive (``BrokerProtocolHandler.handle_read_timeout`` is ``pass``).

:class:`FramedReader` sits between the socket and amqtt. At each packet boundary it reads the
fixed header itself, refuses a remaining length above the limit *before* reading the body,
and reads the body only within the keep-alive deadline. A refused or silent connection looks
like end-of-stream to amqtt (its reader loop then ends the connection normally), and
:attr:`FramedReader.failure` says why, for logs and presence.

The reader is cancellation-safe: header bytes already consumed are kept across calls, and
body reads use ``readexactly`` (which consumes nothing when cancelled).

Hooks for the rest of the broker: :attr:`FramedReader.meter` counts every whole packet
received (``sys/vitals``); :attr:`FramedReader.gate` is awaited before each packet, so a
client is not read from while what the broker wrote to it is still piling up (see
``MeteredWriter.wait_writable``; that wait counts against the keep-alive deadline);
:attr:`FramedReader.screen` sees each packet first and may swallow it (the rate
limit drops a flood here, before amqtt spends a task on each packet); :attr:`FramedReader.inline`
then may handle it at once, in the order packets arrive (a QoS 0/1 PUBLISH: amqtt would give it
a task, and tasks answered QoS 1 out of order). A PUBLISH whose topic is
not valid UTF-8 or holds a wildcard ends the connection as malformed (:func:`well_formed`).

Fast path: when the socket's buffer already holds the whole next packet (the usual case under
load) and the client's writer is not above its high-water mark, the packet is taken from the
buffer at once (``StreamReader.take_packet``), with no timer and no await; otherwise, and for
anything the fast path does not accept (an incomplete, oversized or reserved packet), the
careful path above reads it under the keep-alive (or connect) deadline. A first packet that is
not a CONNECT ends the connection on either path.

Faster still: while the reader waits for a new packet and nothing is buffered, the socket's
stream offers what arrives to :meth:`FramedReader.receive` first (``broker._transport.FastStream``),
which handles whole PUBLISH, PUBACK, PINGREQ and plain SUBSCRIBE packets at once, in the same
call, through the same meter, screen and inline hook; the rest is buffered for the reader as
before. The keep-alive
deadline counts the packets taken that way, and :attr:`FramedReader.hold` is checked before
each of them.

Fairness: amqtt's reader loop never yields while the socket buffer holds whole packets, so
one flooding client could keep the event loop to itself for thousands of packets. The reader
yields to the loop every :data:`YIELD_EVERY` packets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from amqtt.adapters import ReaderAdapter

from broker._transport import FastStream, frame_end

if TYPE_CHECKING:
    from broker._deadlines import Deadlines
    from broker._transport import Meter

logger = logging.getLogger(__name__)

__all__ = [
    "PUBLISH",
    "RECEIVE_AT_ONCE",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "YIELD_EVERY",
    "HELD_PUBLISHES",
    "FrameFailure",
    "FramedReader",
    "Inline",
    "PublishFields",
    "SubscribeRequest",
    "publish_fields",
    "publish_info",
    "refusal",
    "subscribe_request",
    "subscription_info",
    "well_formed",
]

_MAX_LENGTH_BYTES = 4  # MQTT's variable-length integer has at most four bytes
_CONNECT_BYTE = 0x10  # the only valid first byte of a connection [MQTT-3.1.0-1], [MQTT-2.2.2-2]
_RESERVED_TYPES = (0, 15)
YIELD_EVERY = 32  # packets read before giving other connections a turn of the event loop
RECEIVE_AT_ONCE = 256  # packets FramedReader.receive handles of one piece of data at most
HELD_PUBLISHES = 32  # packets kept while the broker withholds acks (FramedReader.hold), before it stops reading
PUBLISH, SUBSCRIBE, UNSUBSCRIBE = 3, 8, 10  # MQTT control packet types (first byte >> 4)
PINGREQ, DISCONNECT = 12, 14
_PUBACK = 0x40  # a PUBACK's first byte (MQTT 3.1.1: type 4, flags 0)
_PINGREQ = 0xC0  # a PINGREQ's first byte
_SUBSCRIBE = 0x82  # a SUBSCRIBE's first byte (type 8, the reserved flags 0x2 [MQTT-3.8.1-1])


PublishFields = tuple[str, int | None, bytes]
"""Topic, packet id and payload of a PUBLISH (:func:`publish_fields`)."""
SubscribeRequest = tuple[int, list[tuple[str, int]]]
"""A SUBSCRIBE's packet id and its (filter, QoS) pairs (:func:`subscribe_request`)."""


class Inline(Protocol):
    """:attr:`FramedReader.inline`: handles a packet as it is read (``MountedHandler.inline``)."""

    def __call__(
        self, frame: bytes, fields: PublishFields | None = None, request: SubscribeRequest | None = None, /
    ) -> bool: ...


class FrameFailure(StrEnum):
    """Why a :class:`FramedReader` stopped delivering packets."""

    PACKET_TOO_LARGE = "packet_too_large"
    KEEPALIVE_TIMEOUT = "keepalive_timeout"
    CONNECT_TIMEOUT = "connect_timeout"
    MALFORMED = "malformed"
    ENDED = "ended"
    """The broker decided to end the connection (see the connection's end reason)."""


class FramedReader(ReaderAdapter):
    """Serves amqtt's ``read(n)`` calls from whole, size-checked packets."""

    __slots__ = (
        "_connected",
        "_deadline",
        "_frame",
        "_header",
        "_held",
        "_idle_limit",
        "_inner",
        "_last_packet_at",
        "_loop",
        "_parked",
        "_pos",
        "_resume",
        "_since_yield",
        "_stream",
        "_take",
        "before_eof",
        "deadlines",
        "declared_length",
        "failure",
        "gate",
        "hold",
        "inline",
        "max_packet_size",
        "meter",
        "owner",
        "screen",
        "translate",
        "writable",
    )  # one of each connection: slots keep it small (README "Performance")

    def __init__(self, inner: ReaderAdapter, *, max_packet_size: int, connect_timeout: float) -> None:
        self._inner = inner
        self.max_packet_size = max_packet_size
        self._idle_limit: float | None = connect_timeout
        self._loop = asyncio.get_running_loop()
        self._last_packet_at = self._loop.time()
        self._header = bytearray()  # fixed-header bytes of the packet being read
        self._frame = b""
        self._pos = 0
        self._connected = False
        self.failure: FrameFailure | None = None
        self.declared_length: int | None = None  # remaining length of a refused packet
        self.meter: Meter | None = None
        self.gate: Callable[[], Awaitable[None]] | None = None
        self.hold: Callable[[], Awaitable[object] | None] | None = None
        """Asked before each packet after CONNECT: None reads on; an awaitable means the broker
        withholds too many acknowledgements from this client (``broker._acks``). The reader then
        keeps reading: PINGREQ and DISCONNECT are delivered at once (so a client that keeps to
        its window stays connected through a long wait), every other packet is kept, in order,
        up to :data:`HELD_PUBLISHES`; only then is the awaitable awaited and the socket not
        read (that wait is the broker's choice, so it does not count against the keep-alive
        deadline). Kept packets are delivered, first, once ``hold`` returns None again."""
        self._held: deque[bytes] | None = None  # made when first needed (most clients never are held)
        self.screen: Callable[[Any, bytes], bool] | None = None
        """Called with :attr:`owner` and each whole packet after CONNECT; False swallows it."""
        self.owner: object | None = None
        """Whose packets these are, for :attr:`screen` (the broker's connection record)."""
        self.writable: Callable[[], bool] | None = None
        """True while ``gate`` would not wait: lets a buffered packet take the fast path."""
        self._take: Callable[[int], bytes | None] | None = getattr(inner, "take_packet", None)
        self.translate: Callable[[bytes], bytes | None] | None = None
        """Turns each whole packet after CONNECT into the form the broker reads (an MQTT 5
        client's into MQTT 3.1.1: ``broker._v5``); None swallows it, ValueError is malformed."""
        self.inline: Inline | None = None
        """Called with each whole packet after CONNECT that ``screen`` let through; True means it
        was handled there, as it was read (amqtt never sees it: ``MountedHandler.inline``).
        :meth:`receive` also passes a PUBLISH's fields, read once (:func:`publish_fields`)."""
        self.before_eof: Callable[[], Awaitable[None]] | None = None
        """Awaited once at a clean end of stream, before amqtt is told (see MountedHandler.settle)."""
        self._since_yield = 0
        self._parked = False  # waiting for the first byte of a packet, nothing of it read yet
        stream = getattr(inner, "stream", None)
        self._stream: FastStream | None = stream if isinstance(stream, FastStream) else None
        self._resume: Callable[[], None] | None = None  # set while parked (see park)
        self.deadlines: Deadlines[FramedReader] | None = None
        """Where a parked reader's keep-alive deadline is kept; None: this reader never parks."""
        self._deadline: int | None = None  # its slot in ``deadlines`` while parked

    def start_keepalive(self, keep_alive: int, grace: float) -> None:
        """After CONNECT: allow ``keep_alive * grace`` seconds between packets (0 = forever)."""
        self._connected = True
        self._idle_limit = keep_alive * grace if keep_alive > 0 else None
        self._last_packet_at = self._loop.time()

    def receive(self, data: bytes) -> bytes:
        """``FastStream.receive``: handle the whole PUBLISH, PUBACK, PINGREQ and SUBSCRIBE
        packets at the start of ``data`` as they arrive, and return the rest, which the careful
        path reads as before.

        Only while this reader waits for a new packet with nothing buffered (so order is kept)
        and the connection is in its plain state: connected, MQTT 3.1.1 (no :attr:`translate`),
        not held back (:attr:`hold`), its writer not above high water (:attr:`gate`). Each packet
        is counted, screened and handled inline exactly as :meth:`_next_frame` would; anything
        else (another packet type, an incomplete, oversized or malformed packet) stops here and
        goes to the careful path with everything after it. At most :data:`RECEIVE_AT_ONCE`
        packets a call: a flood's rest waits in the buffer, read with the reader's yields.
        """
        inline = self.inline
        if not self._parked or not self._connected or self.failure is not None or inline is None:
            return data
        if self.translate is not None or self._held:
            return data
        screen, hold, meter = self.screen, self.hold, self.meter
        size, pos, taken = len(data), 0, 0
        try:
            while pos + 2 <= size and taken < RECEIVE_AT_ONCE:
                if hold is not None and hold() is not None:
                    break
                if not self._writer_ready():
                    break
                end = frame_end(data, pos, self.max_packet_size)
                if end is None:
                    break
                first, length = data[pos], end - pos
                frame = data[pos:end]
                fields = request = None
                if first >> 4 == PUBLISH:
                    fields = publish_fields(frame)
                    if fields is None or "+" in fields[0] or "#" in fields[0]:
                        break  # QoS 2, or to be refused (well_formed): the careful path reads it
                elif first == _SUBSCRIBE:
                    request = subscribe_request(frame)
                    if request is None:
                        break  # not plainly well-formed: amqtt reads (or refuses) it
                elif (first != _PUBACK or length != 4) and (first != _PINGREQ or length != 2):
                    break
                pos, taken = end, taken + 1
                if meter is not None:
                    meter.count_in(frame)
                if screen is not None and not screen(self.owner, frame):
                    if self.failure is not None:
                        break
                    continue
                inline(frame, fields, request)  # takes every packet let through above (MountedHandler.inline)
        except Exception:
            logger.exception("handling a packet as it arrived failed; closing that connection")
            self.end()
        if taken:
            self._last_packet_at = self._loop.time()
        if self.failure is not None:  # the connection ends: the waiting reader sees its end
            self._inner.feed_eof()  # (read() returns b""); nothing more is read
            return b""
        return data[pos:]

    def park(self, resume: Callable[[], None]) -> bool:
        """Wait for the next packet without a task, if that is possible now; True if parked.

        An idle connection's reader task held a chain of suspended coroutines, a task and its
        futures: a third of the memory of a connection (README "Performance"). Parked, nothing
        waits: :meth:`receive` handles PUBLISH, PUBACK, PINGREQ and SUBSCRIBE as they arrive, and
        ``resume`` is called (once) to start a reader task again when anything else arrives
        (it is buffered for that task), at the end of the stream, or when the keep-alive
        deadline passes with nothing received (``failure`` is then set, and the reader sees the
        end at once). Only on a :class:`FastStream` (plain TCP), connected, with nothing of a
        packet read or buffered, not held (:attr:`hold`) and the writer not above high water.
        """
        stream = self._stream
        if stream is None or self.deadlines is None or not self._connected:
            return False
        if self.failure is not None or self._resume is not None:
            return False
        if self._pos < len(self._frame) or self._header or self._held or not self._writer_ready():
            return False
        if stream.pending() or (self.hold is not None and self.hold() is not None):
            return False
        self._resume, self._parked = resume, True
        stream.wake = self._unpark
        self._arm()
        return True

    def unpark(self) -> None:
        """Leave the parked state without resuming (the connection is being stopped)."""
        self._resume, self._parked = None, False
        self._unpark()

    def _arm(self) -> None:
        if self._idle_limit is not None and self.deadlines is not None:
            self._deadline = self.deadlines.add(self, self._last_packet_at + self._idle_limit)

    def expire(self) -> None:
        """The parked reader's keep-alive deadline came (:attr:`deadlines`): ended, unless
        packets came meanwhile."""
        self._deadline = None
        if self._resume is None or self._idle_limit is None:
            return
        if self._loop.time() < self._last_packet_at + self._idle_limit:
            self._arm()  # packets taken as they arrived moved it
            return
        self.failure = FrameFailure.KEEPALIVE_TIMEOUT
        self._unpark()

    def _unpark(self) -> None:
        """Data to read, the end of the stream or the keep-alive deadline: resume the reader."""
        if self._deadline is not None and self.deadlines is not None:
            self.deadlines.discard(self, self._deadline)
            self._deadline = None
        if self._stream is not None:
            self._stream.wake = None
        resume, self._resume = self._resume, None
        if resume is not None:
            self._parked = False
            resume()

    async def read(self, n: int = -1) -> bytes:
        """Return ``n`` bytes of the current packet; ``b""`` once the connection must end."""
        if self.failure is not None:
            return b""
        if self._pos >= len(self._frame) and not await self._next_frame():
            return b""
        available = len(self._frame) - self._pos
        if n < 0:
            n = available
        if n > available:  # the decoder wants more than the packet declared: malformed
            self.failure = FrameFailure.MALFORMED
            return b""
        data = self._frame[self._pos : self._pos + n]
        self._pos += n
        return data

    async def peek(self) -> bytes:
        """The rest of the current packet (loading the next one if needed) without consuming it."""
        if self.failure is not None:
            return b""
        if self._pos >= len(self._frame) and not await self._next_frame():
            return b""
        return self._frame[self._pos :]

    def feed_eof(self) -> None:
        """Forward EOF to the wrapped reader."""
        self._inner.feed_eof()

    def end(self) -> None:
        """Deliver no more packets: amqtt sees end-of-stream at its next read."""
        if self.failure is None:
            self.failure = FrameFailure.ENDED

    async def _next_frame(self) -> bool:
        """Load the next packet ``screen`` lets through; False once the connection must end."""
        while await self._load_frame():
            if self.translate is not None and self._connected:
                try:
                    translated = self.translate(self._frame)
                except ValueError:
                    self.failure = FrameFailure.MALFORMED
                    return False
                if translated is None:
                    self._pos = len(self._frame)
                    continue
                self._frame = translated
            if self._connected and not well_formed(self._frame):
                self.failure = FrameFailure.MALFORMED
                return False
            if self.screen is None or not self._connected or self.screen(self.owner, self._frame):
                if self.inline is None or not self._connected or not self.inline(self._frame):
                    return True
            self._pos = len(self._frame)
            if self.failure is not None:
                return False
        return False

    async def _load_frame(self) -> bool:
        """The next packet, minding :attr:`hold` (see its docstring)."""
        if self.hold is None or not self._connected:
            return await self._read_next()
        while (wait := self.hold()) is not None:
            if self._held is None:
                self._held = deque()
            if len(self._held) >= HELD_PUBLISHES:
                await wait  # the buffer is full too: stop reading (TCP pushes back)
                self._last_packet_at = self._loop.time()
                continue
            if not await (self._read_or_room(wait) if self._held else self._read_next()):
                return False  # what is kept is dropped unanswered: the client resends its QoS 1
            if not self._frame:
                continue  # room came first: deliver what is kept
            if self._frame[0] >> 4 in (PINGREQ, DISCONNECT):
                return True  # answered at once: the connection stays alive while held
            self._held.append(self._frame)
            self._frame, self._pos = b"", 0
        if self._held:  # room again: what was read while held goes first, in order
            self._frame, self._pos = self._held.popleft(), 0
            return True
        if not await self._read_next():
            return False
        if self._frame[0] >> 4 in (PINGREQ, DISCONNECT) or self.hold() is None:
            return True
        # packets taken as they arrived (receive) filled the window while this read waited
        self._held = deque((self._frame,))
        self._frame, self._pos = b"", 0
        return await self._load_frame()

    async def _read_or_room(self, room: Awaitable[object]) -> bool:
        """Read the next packet, unless room comes first (``_frame`` stays empty then): a client
        waiting for the PUBACKs of what is kept may send nothing (keep-alive 0)."""
        read = asyncio.ensure_future(self._read_next())
        free = asyncio.ensure_future(room)
        try:
            await asyncio.wait((read, free), return_when=asyncio.FIRST_COMPLETED)
        finally:
            free.cancel()
            if not read.done():
                read.cancel()  # cancellation-safe (module docstring)
                with suppress(asyncio.CancelledError):
                    await read
        if read.cancelled():
            self._frame, self._pos = b"", 0
            return True
        return read.result()

    async def _read_next(self) -> bool:
        """Read the next packet from the socket into ``_frame``."""
        self._since_yield += 1
        if self._since_yield >= YIELD_EVERY:
            self._since_yield = 0
            await asyncio.sleep(0)
        frame = self._buffered_frame()
        if frame is None and self.failure is not None:
            return False
        while frame is None:
            timeout = None
            if self._idle_limit is not None:
                timeout = max(0.0, self._last_packet_at + self._idle_limit - self._loop.time())
            try:
                async with asyncio.timeout(timeout):
                    frame = await self._read_frame()
                break
            except TimeoutError:
                if self._idle_limit is not None and self._loop.time() < self._last_packet_at + self._idle_limit:
                    continue  # packets came meanwhile, taken as they arrived (receive)
                self.failure = FrameFailure.KEEPALIVE_TIMEOUT if self._connected else FrameFailure.CONNECT_TIMEOUT
                return False
        if frame is None:
            if self.failure is None and self.before_eof is not None:
                await self.before_eof()  # packets already read finish before amqtt sees the end
            return False
        self._frame, self._pos = frame, 0
        self._last_packet_at = self._loop.time()
        if self.meter is not None:
            self.meter.count_in(frame)
        return True

    def _writer_ready(self) -> bool:
        """True while :attr:`gate` would not wait (the client reads what it is sent)."""
        return self.gate is None or (self.writable is not None and self.writable())

    def _buffered_frame(self) -> bytes | None:
        """The next packet if it is already buffered and may be read now (see module docstring)."""
        if self._header or self._take is None:
            return None
        if not self._writer_ready():
            return None
        frame = self._take(self.max_packet_size)
        if frame is not None and frame[0] >> 4 in _RESERVED_TYPES:
            self.failure = FrameFailure.MALFORMED  # [MQTT-2.2.1]: types 0 and 15 are reserved
            return None
        if frame is not None and not self._connected and frame[0] != _CONNECT_BYTE:
            self.failure = FrameFailure.MALFORMED  # not MQTT, as _read_frame's first byte
            return None
        return frame

    async def _read_frame(self) -> bytes | None:
        """Read one whole packet; ``None`` on EOF or a refused packet (see :attr:`failure`)."""
        if self.gate is not None and not self._header:
            try:
                await self.gate()
            except (ConnectionError, OSError, RuntimeError):
                return None
        while not self._header_complete():
            self._parked = not self._header
            try:
                byte = await self._read_exactly(1)
            finally:
                self._parked = False
            if not byte:
                return None
            self._header += byte
            if not self._connected and self._header[0] != _CONNECT_BYTE:
                self.failure = FrameFailure.MALFORMED  # not MQTT: don't wait for a bogus body
                return None
            if self._header[0] >> 4 in _RESERVED_TYPES:
                self.failure = FrameFailure.MALFORMED  # [MQTT-2.2.1]: types 0 and 15 are reserved
                return None
            if len(self._header) > 1 + _MAX_LENGTH_BYTES:
                self.failure = FrameFailure.MALFORMED
                return None
        length = self._remaining_length()
        if length > self.max_packet_size:
            self.failure, self.declared_length = FrameFailure.PACKET_TOO_LARGE, length
            return None
        body = await self._read_exactly(length) if length else b""
        if len(body) < length:
            return None
        header, self._header = bytes(self._header), bytearray()
        return header + body

    def _header_complete(self) -> bool:
        return len(self._header) >= 2 and not self._header[-1] & 0x80

    def _remaining_length(self) -> int:
        value, multiplier = 0, 1
        for byte in self._header[1:]:
            value += (byte & 0x7F) * multiplier
            multiplier *= 128
        return value

    async def _read_exactly(self, n: int) -> bytes:
        try:
            data = await self._inner.read(n)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return b""
        return data if len(data) == n else b""


def _body_start(frame: bytes) -> int:
    """Index of the first byte after the fixed header (its remaining-length bytes skipped)."""
    index = 1
    while index < len(frame) and frame[index] & 0x80:
        index += 1
    return index + 1


def well_formed(frame: bytes) -> bool:
    """False for a PUBLISH whose topic is not valid UTF-8 or holds a wildcard: the connection
    must be closed ([MQTT-1.5.3-1], [MQTT-3.3.2-2]).

    amqtt would instead route an invalid one to the text ``str(b"...")`` (a topic nobody asked
    for) and silently discard one with a wildcard, leaving a QoS 1 sender without its PUBACK.
    """
    if not frame or frame[0] >> 4 != PUBLISH:
        return True
    index = _body_start(frame)
    end = index + 2 + int.from_bytes(frame[index : index + 2], "big")
    try:
        topic = frame[index + 2 : end].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "+" not in topic and "#" not in topic


def publish_info(frame: bytes) -> tuple[int, int | None] | None:
    """``(qos, packet_id)`` of a whole PUBLISH packet; ``None`` if it is not a readable one."""
    if not frame or frame[0] >> 4 != PUBLISH:
        return None
    qos = (frame[0] >> 1) & 3
    index = _body_start(frame)  # first byte of the variable header
    if len(frame) < index + 2:
        return None
    id_at = index + 2 + int.from_bytes(frame[index : index + 2], "big")
    if qos == 0:
        return (0, None) if len(frame) >= id_at else None
    if qos == 3 or len(frame) < id_at + 2:
        return None
    return qos, int.from_bytes(frame[id_at : id_at + 2], "big")


def publish_fields(frame: bytes) -> PublishFields | None:
    """Topic, packet id and payload of a whole, well-formed PUBLISH at QoS 0 (DUP clear) or 1;
    ``None`` for anything else (QoS 2, a QoS 0 marked DUP, QoS 3, a truncated packet)."""
    if not frame or frame[0] >> 4 != PUBLISH:
        return None
    qos, dup = (frame[0] >> 1) & 3, frame[0] & 0x08
    if qos > 1 or (qos == 0 and dup):
        return None
    index = _body_start(frame)
    end = index + 2 + int.from_bytes(frame[index : index + 2], "big")
    if len(frame) < end + 2 * qos:
        return None
    try:
        topic = frame[index + 2 : end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not qos:
        return topic, None, frame[end:]
    return topic, int.from_bytes(frame[end : end + 2], "big"), frame[end + 2 :]


def subscribe_request(frame: bytes) -> SubscribeRequest | None:
    """``(packet_id, [(filter, qos), ...])`` of a plainly well-formed SUBSCRIBE, as amqtt's
    ``SubscribePacket`` would read it; ``None`` for anything less plain, which amqtt then reads
    as before: reserved flags other than 0x2, packet id 0, no filter, a filter that is not
    valid UTF-8, a QoS byte above 2, bytes left over or missing at the end."""
    if not frame or frame[0] != _SUBSCRIBE:
        return None
    index = _body_start(frame)
    size = len(frame)
    if size < index + 2:
        return None
    packet_id, index = int.from_bytes(frame[index : index + 2], "big"), index + 2
    topics: list[tuple[str, int]] = []
    while index < size:
        end = index + 2 + int.from_bytes(frame[index : index + 2], "big")
        if end + 1 > size or frame[end] > 2:
            return None
        try:
            topics.append((frame[index + 2 : end].decode("utf-8"), frame[end]))
        except UnicodeDecodeError:
            return None
        index = end + 1
    return (packet_id, topics) if packet_id and topics else None


def subscription_info(frame: bytes) -> tuple[int, int] | None:
    """``(packet_id, filters)`` of a whole SUBSCRIBE or UNSUBSCRIBE; ``None`` if not a readable one.

    Counts whole entries (length, filter and, in a SUBSCRIBE, the QoS byte) as amqtt reads
    them: an incomplete entry at the end is ignored, and no entry at all is unreadable.
    """
    if not frame or frame[0] >> 4 not in (SUBSCRIBE, UNSUBSCRIBE):
        return None
    extra = 1 if frame[0] >> 4 == SUBSCRIBE else 0
    index = _body_start(frame)
    if len(frame) < index + 2:
        return None
    packet_id, index, count = int.from_bytes(frame[index : index + 2], "big"), index + 2, 0
    while index + 2 <= len(frame):
        end = index + 2 + int.from_bytes(frame[index : index + 2], "big") + extra
        if end > len(frame):
            break
        count, index = count + 1, end
    return (packet_id, count) if count else None


def refusal(frame: bytes, packet_id: int, filters: int) -> bytes:
    """The answer to a SUBSCRIBE or UNSUBSCRIBE that is dropped unread: SUBACK with 0x80 for
    each of its ``filters``, or UNSUBACK (MQTT 3.1.1 has no refusal code for it)."""
    if frame[0] >> 4 == UNSUBSCRIBE:
        return b"\xb0\x02" + packet_id.to_bytes(2, "big")
    body = packet_id.to_bytes(2, "big") + b"\x80" * filters
    length, encoded = len(body), bytearray()
    while True:
        length, byte = divmod(length, 128)
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return b"\x90" + bytes(encoded) + body
