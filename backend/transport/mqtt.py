"""The MQTT service client: how the backend reaches the broker, logged in as a trusted service.

The app holds one persistent connection (the ingest takes what devices publish from it; device
commands, downlinks and Blynk.Air publish through it); the CLI opens short-lived clean ones
(``openblynk device ping``...).

paho-mqtt runs its network loop in its own thread; received messages cross into asyncio
through an inbox: a bounded deque guarded by a lock. The paho thread appends to it and wakes the
consumer (one ``call_soon_threadsafe``) only when the consumer is waiting for an empty inbox; the
consumer takes every waiting message at once (:meth:`ServiceClient.take`). Under load the inbox
is seldom empty, so messages cross with no cross-thread call each. When the inbox is full the paho
thread waits, so it stops reading the socket and the broker holds the rest: backpressure instead
of unbounded memory.

The app's session is persistent (clean_session=False; short-lived CLI clients use a clean one)
with QoS 1 subscriptions, and it acknowledges a QoS 1 message only when the consumer says its
effects are stored (:meth:`ServiceClient.done`), in the order the messages came
([MQTT-4.6.0-2]). Until then the broker keeps the message and sends it again after a
reconnect, so neither a restart nor a crash of the app loses what a device sent at QoS 1. A
crash can repeat a message whose effects were stored but not yet acknowledged: delivery is at
least once.

A clean stop repeats nothing: :meth:`ServiceClient.stop` disconnects only once the broker has
read the last acknowledgements (:meth:`ServiceClient.fence`). paho closes its socket the moment
DISCONNECT is written, and the broker keeps sending to the app until it reads it, so the socket
closes with data unread and the app's kernel resets the connection. The broker may then fail a
write before it reads what the app sent last (asyncio stops reading a socket whose write
failed), and a reset may discard it on the way: the broker would give the messages those
PUBACKs answered to the next connection, and their rows were committed already.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from backend.transport.buffered import BufferedClient

log = logging.getLogger(__name__)

FENCE_FILTER = "openblynk/fence"
"""A topic filter the service client never subscribes to: unsubscribing from it changes nothing,
and the broker's UNSUBACK says it has read everything sent before ([MQTT-3.10.4-5])."""
FENCE_SECONDS = 5.0
"""How long :meth:`ServiceClient.stop` waits for that UNSUBACK before it disconnects anyway."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message received from the broker."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    receipt: int | None = None
    """For :meth:`ServiceClient.done` (QoS 1/2 on a manually acknowledging client), else None."""


@dataclass(slots=True)
class _Unacked:
    receipt: int
    mid: int
    qos: int
    done: bool = False
    received: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class _Acks:
    """Messages taken from the broker and not yet acknowledged, in the order they came."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: deque[_Unacked] = field(default_factory=deque)
    by_receipt: dict[int, _Unacked] = field(default_factory=dict)
    next_receipt: int = 0


class ServiceClient:
    """An async façade over a paho client that logs in as a platform service."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        client_id: str,
        subscriptions: list[str],
        queue_size: int = 10_000,
        clean_session: bool = False,
    ) -> None:
        self.subscriptions = subscriptions
        self._host, self._port = host, port
        # The inbox. ``_room`` guards it with ``_waiter`` and ``_ended``; the paho thread waits on
        # it for room.
        self._inbox: deque[Message] = deque()
        self._inbox_size = queue_size
        self._room = threading.Condition()
        self._waiter: asyncio.Future[None] | None = None  # the consumer, while it waits for a message
        self._ended = False  # end_of_messages() was called
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = threading.Event()
        self.subscribed = threading.Event()
        """Set once the broker acknowledged the subscriptions of the current connection."""
        self._stopping = False
        self._paused = False
        self._manual_ack = not clean_session
        self._acks = _Acks()
        self._fences = threading.Condition()  # guards ``_fenced``: the UNSUBACKs of fence()
        self._fenced: set[int] = set()
        self._client = BufferedClient(  # reads a piece at a time (backend.transport.buffered)
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, manual_ack=self._manual_ack
        )
        self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.max_queued_messages_set(100_000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_args: self.subscribed.set()
        self._client.on_unsubscribe = self._on_unsubscribe
        self._client._on_message_filtered = _NO_FILTERS  # type: ignore[assignment]

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected.is_set()

    @property
    def queued(self) -> int:
        """Messages received and not yet taken by the consumer (at most ``queue_size``)."""
        return len(self._inbox)

    async def start(self, timeout: float = 30.0) -> None:
        """Connect (retrying until ``timeout``), start the network thread and wait until the
        broker has taken the subscriptions: once this returns, messages published from then on
        reach this client (with several app replicas, this one is a member of the ingest's
        shared subscription, so the broker counts it when it splits the devices)."""
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        ok = await asyncio.to_thread(self._connected.wait, timeout)
        ok = ok and await asyncio.to_thread(self.subscribed.wait, timeout)
        if not ok:
            await self.stop()
            raise ConnectionError(
                f"cannot reach the MQTT broker at {self._host}:{self._port} within {timeout:.0f} s; "
                "is `openblynk broker` running?"
            )

    def pause(self) -> None:
        """Take no more messages (before a clean stop). The broker keeps what arrives from now
        on, unacknowledged, and sends it again after the next connection."""
        self._paused = True
        self._wake_paho()  # it may wait for room with a message it must now give up

    def done(self, receipt: int | None) -> None:
        """The message ``receipt`` is fully handled: acknowledge it, once every message that
        came before it is handled too (thread-safe; unknown or stale receipts are ignored)."""
        if receipt is not None:
            self.done_all((receipt,))

    def done_all(self, receipts: Sequence[int]) -> None:
        """:meth:`done` for each of ``receipts`` in order, under one lock (a committed batch).

        The batch's PUBACKs go to paho as one piece: paho's ``ack()`` queues each on its own and
        wakes paho's thread for each (a system call each), and paho writes each with its own
        ``send`` (issue #16: together about a seventh of the app's CPU a message). This uses
        paho's ``_packet_queue``, private in the pinned paho-mqtt 2.2.0, as ``ack()`` does."""
        acks = self._acks
        pubacks = bytearray()
        with acks.lock:
            for receipt in receipts:
                entry = acks.by_receipt.pop(receipt, None)
                if entry is None:  # taken on an earlier connection: the broker sends it again
                    continue
                entry.done = True
                while acks.pending and acks.pending[0].done:
                    first = acks.pending.popleft()
                    if first.qos == 1:
                        pubacks += _PUBACK.pack(PUBACK, 2, first.mid)
                        continue
                    self._queue_pubacks(pubacks)  # in order: the PUBACKs before it go first
                    self._client.ack(first.mid, first.qos)
            self._queue_pubacks(pubacks)

    def _queue_pubacks(self, pubacks: bytearray) -> None:
        """Hand paho the PUBACKs gathered in ``pubacks`` as one piece (if any), and empty it."""
        if pubacks:
            self._client._packet_queue(PUBACK, bytes(pubacks), 0, 0)
            pubacks.clear()

    @property
    def unacknowledged(self) -> int:
        """Messages taken and not yet acknowledged on the current connection."""
        return len(self._acks.pending)

    @property
    def lag_seconds(self) -> float:
        """How long the oldest unacknowledged message has waited since it was received (0 when
        none waits): the ingest's lag from a device's QoS 1 value to its committed history row."""
        with self._acks.lock:
            pending = self._acks.pending
            return time.monotonic() - pending[0].received if pending else 0.0

    async def stop(self) -> None:
        """Disconnect and stop the network thread; a client that acknowledged messages first
        waits (at most :data:`FENCE_SECONDS`) until the broker has read those acknowledgements
        (:meth:`fence`, module docstring)."""
        self._stopping = True
        self._wake_paho()  # or loop_stop would wait for a thread that waits for room
        if self._manual_ack and self.connected and not await self.fence(FENCE_SECONDS):
            log.warning("the broker did not confirm the last acknowledgements within %.0f s", FENCE_SECONDS)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    async def fence(self, timeout: float) -> bool:
        """Wait until the broker has read every packet written so far (the acknowledgements of
        :meth:`done` among them): True once it answered an UNSUBSCRIBE sent after them (from
        :data:`FENCE_FILTER`, which changes nothing), False if it did not within ``timeout``
        seconds or the connection ended. A broker reads a connection's packets in order and
        answers after it has handled those before."""
        rc, mid = self._client.unsubscribe(FENCE_FILTER)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            return False

        def answered() -> bool:  # the UNSUBACK may have come already: _fenced keeps it
            with self._fences:
                self._fences.wait_for(lambda: mid in self._fenced or not self.connected, timeout)
                if mid in self._fenced:
                    self._fenced.discard(mid)
                    return True
                return False

        return await asyncio.to_thread(answered)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> paho.MQTTMessageInfo:
        """Queue a message for the broker (thread-safe, never blocks); ``wait_for_publish`` on
        the result waits until it is sent."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            log.warning("publish to %s failed: %s", topic, paho.error_string(info.rc))
        return info

    async def take(self, limit: int = 1000) -> list[Message] | None:
        """Wait for a received message, then take every waiting one up to ``limit``, oldest
        first (never an empty list); None once :meth:`end_of_messages` was called and every
        message received before it has been taken. One consumer at a time; cancelling it while
        it waits loses nothing."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        while True:
            with self._room:
                if self._inbox:
                    inbox = self._inbox
                    batch = [inbox.popleft() for _ in range(min(limit, len(inbox)))]
                    self._room.notify_all()  # the paho thread may be waiting for room
                    return batch
                if self._ended:
                    return None
                if self._waiter is not None:
                    raise RuntimeError("another task is already waiting for messages")
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:  # woken, or cancelled: either way no one must wake this waiter again
                with self._room:
                    if self._waiter is waiter:
                        self._waiter = None

    async def messages(self) -> Message | None:
        """The next received message; None once :meth:`end_of_messages` was called and every
        message received before it has been taken."""
        batch = await self.take(1)
        return None if batch is None else batch[0]

    async def end_of_messages(self) -> None:
        """Mark the end of the stream (after :meth:`pause` or :meth:`stop`), so the consumer
        can drain it; a message that arrives after this is left to the broker."""
        with self._room:
            self._ended = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            _wake(waiter)

    def _wake_paho(self) -> None:
        """Have the paho thread look again at why it waits for room."""
        with self._room:
            self._room.notify_all()

    # -- paho callbacks (paho's thread) ---------------------------------------------------
    def _on_connect(
        self, client: paho.Client, _ud: object, _flags: object, rc: ReasonCode, _props: object = None
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the service connection: %s", rc)
            return
        self.subscribed.clear()
        with self._acks.lock:  # packet ids of the old connection mean nothing now
            self._acks.pending.clear()
            self._acks.by_receipt.clear()
        if self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])
        else:
            self.subscribed.set()
        self._connected.set()
        log.info("connected to the broker at %s:%s", self._host, self._port)

    def _on_disconnect(
        self, _c: paho.Client, _ud: object, _flags: object, rc: ReasonCode, _props: object = None
    ) -> None:
        self._connected.clear()
        with self._fences:  # fence() waits for no answer on this connection any more
            self._fences.notify_all()
        if not self._stopping:
            log.warning("lost the broker connection (%s); reconnecting", rc)

    def _on_unsubscribe(self, _c: paho.Client, _ud: object, mid: int, _rcs: object, _props: object = None) -> None:
        with self._fences:
            self._fenced.add(mid)
            self._fences.notify_all()

    def _on_message(self, _c: paho.Client, _ud: object, msg: paho.MQTTMessage) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self._paused:
            return  # not acknowledged: the broker keeps it
        receipt = self._take(msg)
        item = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), receipt)
        with self._room:
            # Wait for room: this is the backpressure. pause() and stop() wake this wait; a
            # closed loop does not, hence the timeout to look again.
            while len(self._inbox) >= self._inbox_size:
                if self._stopping or self._paused or loop.is_closed():
                    break
                self._room.wait(timeout=1.0)
            handed = len(self._inbox) < self._inbox_size and not self._ended  # after the end no one takes it
            if handed:
                self._inbox.append(item)
                waiter, self._waiter = self._waiter, None
        if not handed:
            log.debug("left %s to the broker during shutdown", msg.topic)
            self._forget(receipt)
        elif waiter is not None:  # the consumer waits for an empty inbox: the only cross-thread call
            _wake(waiter)

    def _take(self, msg: paho.MQTTMessage) -> int | None:
        """Record a received message that needs an acknowledgement; its receipt."""
        if not self._manual_ack or msg.qos == 0:
            return None
        acks = self._acks
        with acks.lock:
            acks.next_receipt += 1
            entry = _Unacked(acks.next_receipt, msg.mid, msg.qos)
            acks.pending.append(entry)
            acks.by_receipt[entry.receipt] = entry
            return entry.receipt

    def _forget(self, receipt: int | None) -> None:
        """A message not handed to the consumer: it must never be acknowledged, nor anything
        after it on this connection (acknowledgements go in order); the broker resends them."""
        if receipt is None:
            return
        with self._acks.lock:
            self._acks.by_receipt.pop(receipt, None)  # stays first-not-done in ``pending`` for good


class _NoFilters:
    """paho's per-topic callbacks, of which this client has none: paho matches every message
    against them (about a sixth of its thread's time a message here, issue #16)."""

    @staticmethod
    def iter_match(_topic: str) -> tuple[()]:
        return ()


_NO_FILTERS = _NoFilters()
_PUBACK = struct.Struct("!BBH")


def _wake(waiter: asyncio.Future[None]) -> None:
    """Wake a consumer waiting for a message, from any thread."""
    try:
        waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
    except RuntimeError:  # its loop is closed: no one is left to wake
        log.debug("the consumer's loop closed while it waited for messages")


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # a cancelled consumer leaves its message in the inbox for the next take
        waiter.set_result(None)
