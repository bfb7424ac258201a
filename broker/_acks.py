"""Withheld acknowledgements: a publisher's QoS 1 PUBLISH is acknowledged once a durable sink has it.

With ``BrokerSettings.sink_acks`` the broker does not answer a device's (or a gateway's or an
integration client's) QoS 1 PUBLISH when it reads it, as stock amqtt does. The message gets a
:class:`Receipt` and is routed as usual; every *durable sink* it reaches holds the receipt with
its copy, and the PUBACK is written to the publisher only when each of those sinks has
acknowledged its copy. A durable sink is a persistent session (clean_session=0) of a trusted
service at QoS 1 or 2, alone or through a shared group (``broker._shared``): the app's ingest,
which acknowledges a message only once what it made is committed (``backend.transport.mqtt``).

So a PUBACK means "stored", and every crash before that (app, broker, database, power) is
covered by the publisher's own resend of unacknowledged QoS 1 publishes on reconnect
([MQTT-4.4.0-1]). A device uplink (``d/<id>/...``) that finds no durable sink at all (the app
is not connected yet after a broker restart) waits in the broker, unacknowledged, for the
first durable sink that subscribes to it; any other message that finds none is acknowledged
once routed (there is nothing to wait for).

Memory stays bounded without dropping anything acknowledged: a connection may have at most
``device_inflight_limit`` receipts outstanding; past that the broker stops reading its socket
(TCP pushes back) until acknowledgements free room (:meth:`Inflight.hold`). Before it stops, the
reader keeps reading: it answers PINGREQ (and DISCONNECT) at once and keeps up to 32 further
packets (``broker._framing.HELD_PUBLISHES``), so a client that keeps to its window (paho's
max_inflight 20) is never stopped and its keep-alive holds through a long sink outage. A message with a
receipt is never dropped by a full backlog or group queue (the receipts bound them instead).
A sink session that is discarded with receipts still in it (it expired, or reconnected clean)
lost those copies: each publisher still waiting on one is disconnected, so that it resends.

Order: PUBACKs go in the order the PUBLISHes arrived ([MQTT-4.6.0-2]), whichever sink answers
first. A receipt answered before an older one waits behind it (:meth:`Inflight.release`), and
counts against the limit until its PUBACK is written. Receipts are made as packets are read
(``MountedHandler.inline``), so a publish the broker answers at once (refused, or over the rate
limit: :meth:`Inflight.answer`) also waits for the ones before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from broker._mailbox import LazyEvent

__all__ = ["Inflight", "Receipt", "puback"]


def puback(packet_id: int) -> bytes:
    """The PUBACK packet of ``packet_id``."""
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


@dataclass(eq=False, slots=True)
class Receipt:
    """One QoS 1 PUBLISH whose PUBACK waits for the durable sinks that took it."""

    inflight: Inflight
    """The publisher's connection's count of withheld acknowledgements."""
    packet_id: int
    sinks: int = 0
    """Copies held by durable sinks and not yet acknowledged by them."""
    routed: bool = False
    """Routing is over: no further sink will take a copy (until :meth:`Inflight.release`)."""
    done: bool = False
    """Answered: its PUBACK is written once every older receipt of its connection is answered too."""

    def taken(self) -> None:
        """A durable sink took a copy."""
        self.sinks += 1

    def seal(self) -> bool:
        """Routing is over; whether a durable sink holds a copy (else the caller decides)."""
        self.routed = True
        return self.sinks > 0

    def acknowledged(self) -> None:
        """A durable sink acknowledged its copy: the PUBACK goes once none is outstanding."""
        self.sinks -= 1
        if self.sinks <= 0 and self.routed:
            self.inflight.release(self)


@dataclass(eq=False, slots=True)
class Inflight:
    """The withheld acknowledgements of one connection, at most ``limit`` of them, answered in
    the order their PUBLISHes arrived."""

    write: Callable[[bytes], None]
    """Writes a packet to the publisher (no-op once its connection is closed)."""
    limit: int
    connection: object | None = None
    """The publisher's ``broker._session.Connection`` (opaque here: the broker ends it when a
    durable copy of its message is lost)."""
    count: int = 0
    """Receipts whose PUBACK is not written yet."""
    closed: bool = False
    _room: asyncio.Event = field(default_factory=LazyEvent)
    _order: deque[Receipt] | None = None
    """The receipts not yet written, oldest first (made by the first one)."""

    @property
    def label(self) -> str:
        """The publisher, for logs (its connection's label, made when asked for)."""
        return str(getattr(self.connection, "label", ""))

    def receipt(self, packet_id: int) -> Receipt:
        """A new receipt for the QoS 1 PUBLISH ``packet_id`` just read."""
        self.count += 1
        receipt = Receipt(self, packet_id)
        if self._order is None:
            self._order = deque()
        self._order.append(receipt)
        return receipt

    def answer(self, packet_id: int) -> None:
        """The PUBLISH ``packet_id`` just read is answered at once (nothing to store): its PUBACK
        follows those of the PUBLISHes read before it."""
        self.release(self.receipt(packet_id))

    def release(self, receipt: Receipt) -> None:
        """Answer ``receipt`` (once): its PUBACK and those of younger answered receipts go as
        soon as no older receipt is still waiting; their room is freed then."""
        if receipt.done:
            return
        receipt.done = True
        order = self._order
        while order and order[0].done:
            written = order.popleft()
            self.count -= 1
            if not self.closed:
                self.write(puback(written.packet_id))
        if self.count < self.limit:
            self._room.set()

    def hold(self) -> Awaitable[object] | None:
        """For ``FramedReader.hold``: None while there is room, else what to await for room
        (awaited only once the reader's own small buffer is full too, so it is no coroutine:
        one never awaited would warn)."""
        if self.count < self.limit or self.closed:
            return None
        self._room.clear()
        return _Room(self._room)

    def close(self) -> None:
        """The connection ended: nothing more is written; a reader waiting for room goes on."""
        self.closed = True
        self._order = None
        self._room.set()


class _Room:
    """Awaits room in an :class:`Inflight` (an awaitable made lazily, see :meth:`Inflight.hold`)."""

    __slots__ = ("_event",)

    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    def __await__(self) -> Generator[Any, None, bool]:
        return self._event.wait().__await__()
