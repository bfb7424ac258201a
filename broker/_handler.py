"""amqtt protocol handler: hides a device's mount prefix, times ``downlink/ping``, and sends
QoS 1/2 messages so that none is lost when a persistent session reconnects.

amqtt 0.12.1 waits a hard-coded 5 s for each PUBACK/PUBREC/PUBCOMP and then *discards* the
message; it also discards it when the connection ends, and cancels deliveries that had not
started. A persistent subscriber (the backend's ingest) that restarts therefore lost every
message in flight. Here a QoS 1/2 message lives in ``session.inflight_out`` from the moment it
is queued (see ``DeliveryBroker.send_to``) until the client acknowledges it; nothing else
removes it, so on reconnect the broker sends what is left again, in order, with DUP set
([MQTT-4.4.0-1]). MQTT 3.1.1 resends only on reconnect, never within a connection; a client
that stops acknowledging fills its outgoing queue and is disconnected as a slow consumer.

Incoming QoS 0 and 1 PUBLISHes are handled as they are read (:meth:`MountedHandler.inline`),
not in a task each as amqtt does: tasks wrote PUBACKs out of order whenever one of them had to
wait, or the reader answered a later publish itself (rate limit), and a client's PUBACKs must
follow the order of its PUBLISHes ([MQTT-4.6.0-2]). QoS 2 keeps amqtt's flow (its PUBREL wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from amqtt.errors import AMQTTError, MQTTError, NoDataError, ProtocolHandlerError
from amqtt.events import MQTTEvents
from amqtt.mqtt import packet_class
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.packet import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    RESERVED_0,
    RESERVED_15,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    MQTTFixedHeader,
)
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler, Subscription
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.publish import PublishPacket, PublishPayload, PublishVariableHeader
from amqtt.mqtt.pubrec import PubrecPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.plugins.manager import PluginManager
from amqtt.session import INCOMING, ApplicationMessage, IncomingApplicationMessage, OutgoingApplicationMessage, Session

from broker._acks import Inflight, Receipt, puback
from broker._framing import FramedReader, PublishFields, SubscribeRequest, publish_fields, subscribe_request
from broker._mailbox import LazyDict, LazyEvent, Mailbox
from broker.errors import InvalidTopicError
from broker.namespace import Namespace
from broker.topics import DeviceMount

__all__ = ["MountedHandler"]

_PUBACK = 0x40  # a PUBACK's first byte (MQTT 3.1.1: type 4, flags 0)
_PINGREQ = b"\xc0\x00"
_PINGRESP = b"\xd0\x00"
_HANDLERS = {
    CONNACK: "handle_connack",
    SUBSCRIBE: "handle_subscribe",
    UNSUBSCRIBE: "handle_unsubscribe",
    SUBACK: "handle_suback",
    UNSUBACK: "handle_unsuback",
    PUBACK: "handle_puback",
    PUBREC: "handle_pubrec",
    PUBREL: "handle_pubrel",
    PUBCOMP: "handle_pubcomp",
    PINGREQ: "handle_pingreq",
    PINGRESP: "handle_pingresp",
    PUBLISH: "handle_publish",
    DISCONNECT: "handle_disconnect",
}
"""Packet type -> the handler method amqtt's reader loop runs in a task for it."""
_HANDLER_LOG = logging.getLogger("amqtt.mqtt.protocol.handler")
"""The logger amqtt's handler writes to (its messages name the client themselves)."""


class _Outward(Protocol):
    """A gateway's map of broker topics to its own (``broker._gateway_state.GatewayState``)."""

    def outward(self, topic: str) -> str | None: ...


class MountedHandler(BrokerProtocolHandler):
    """``BrokerProtocolHandler`` whose outgoing PUBLISH topics are device-relative (for a
    gateway: ``dev/<token>/``-prefixed, through its token map).

    Every message to a client, whatever path it took (broadcast, retained, always-delivered,
    diag, ping), goes through :meth:`mqtt_publish`, :meth:`relative` or :meth:`ping`; stripping ``d/<id>/`` here
    means no code path can leak the prefix -- or another device's topic -- to a device.
    """

    __slots__ = (
        "_busy",
        "_pubcomp_waiters_",
        "_pubrec_waiters_",
        "_pubrel_waiters_",
        "_receipts",
        "_running",
        "_settled",
        "_stopping",
        "_wake",
        "_watched",
        "connection",
        "current",
        "fast_route",
        "inflight",
        "on_puback",
        "on_wake",
    )  # beside amqtt's __dict__: a third of a connection's handler memory (README "Performance")

    # amqtt's QoS 2 waiters, made when first used (broker._mailbox); its PUBACK waiters are
    # used on the per-message path of a service connection, so they stay a plain dict
    _pubrec_waiters = LazyDict[int, asyncio.Future[Any]]()
    _pubrel_waiters = LazyDict[int, asyncio.Future[Any]]()
    _pubcomp_waiters = LazyDict[int, asyncio.Future[Any]]()

    connection: object | None
    """The broker's record of this connection (a ``broker._session.Connection``), set after
    CONNACK: amqtt's end-of-connection callback passes only the handler, and the broker finds
    its record here. The handler itself never reads it, so it stays opaque (``object``) and
    this module does not depend on the broker's session records."""
    inflight: Inflight | None
    """Set (``BrokerSettings.sink_acks``) for a publisher whose QoS 1 PUBLISH is acknowledged
    only once durable sinks have it (``broker._acks``); None: acknowledged on receipt."""
    current: Receipt | None
    """The receipt of the message being routed now; the broker takes it with the message's
    broadcast (``RoutingBroker._broadcast_message``)."""
    on_wake: Callable[[MountedHandler], None] | None
    """Set while the connection's message loop is parked (no task waits in :meth:`idle`): the
    next :meth:`wake` calls it (once, with this handler) to run the loop again."""
    fast_route: Callable[[Any, MountedHandler, str, bytes, int, int | None], bool] | None
    """Set for a device's MQTT 3.1.1 connection: routes one of its uplinks at once, as it is
    read (``RoutingBroker.route_uplink``: session, handler, topic, payload, QoS, packet id);
    False leaves the PUBLISH to the general path below (anything but a valid uplink, or others
    still queued)."""
    on_puback: Callable[[int], bool] | None
    """Called with the packet id of a PUBACK no task waits for; True if it answered a PUBLISH
    written by :meth:`send_now` (the broker's outbox counts those, ``broker._delivery``)."""

    def __init__(
        self,
        plugins_manager: PluginManager[Any],
        session: Session | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.connection = self.inflight = self.current = None
        self.on_wake = self.fast_route = self.on_puback = None
        self._busy = 0
        self._settled: asyncio.Event | None = None
        self._receipts: dict[int, Receipt] | None = None  # id(message) -> its receipt, while queued
        self._wake: asyncio.Future[None] | None = None
        self._watched: asyncio.Future[DisconnectPacket | None] | None = None
        self._stopping = False
        self._running: list[asyncio.Task[None]] = []
        """Tasks of the packets the reader loop handed on, while they run (amqtt's loop kept
        them in its frame)."""
        # BrokerProtocolHandler.__init__ and ProtocolHandler.__init__ (amqtt 0.12.1, pinned;
        # test_broker_amqtt_inits checks that every attribute they set is here), with
        # mailboxes and an event that hold no memory while unused (broker._mailbox) instead of
        # the two asyncio Queues and the Event they make only to be replaced: a connect made
        # and dropped them (README "Performance")
        self.logger = _HANDLER_LOG
        if session is not None:
            self._init_session(session)
        else:
            self.session = None
        self.reader = self.writer = None
        self.plugins_manager = plugins_manager
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._reader_task = self._keepalive_task = self._reader_ready = None
        self._reader_stopped = LazyEvent()
        self._puback_waiters = {}
        self._pubrec_waiters_ = self._pubrel_waiters_ = self._pubcomp_waiters_ = None  # LazyDict
        self._write_lock = asyncio.Lock()
        self._disconnect_waiter = None
        self._pending_subscriptions = Mailbox()
        self._pending_unsubscriptions = Mailbox()
        self._pending_subscriptions.wake = self._pending_unsubscriptions.wake = self.wake

    def _init_session(self, session: Session) -> None:
        """Override: amqtt's logger itself for every handler (amqtt makes a ``LoggerAdapter``
        for each, whose ``client_id`` nothing here formats: 150 bytes a connection)."""
        super()._init_session(session)
        self.logger = _HANDLER_LOG

    async def mqtt_connack_authorize(self, authorize: bool) -> None:
        """Override: CONNACK written as bytes (amqtt builds a packet object and takes a lock)."""
        assert self.session is not None and self.writer is not None
        self.writer.write(bytes((0x20, 2, self.session.parent & 1, 0 if authorize else 5)))

    async def mqtt_acknowledge_subscription(self, packet_id: int, return_codes: list[int]) -> None:
        """Override: SUBACK written as bytes."""
        if self.writer is not None:
            self.writer.write(_packet(0x90, packet_id.to_bytes(2, "big") + bytes(return_codes)))

    async def mqtt_acknowledge_unsubscription(self, packet_id: int) -> None:
        """Override: UNSUBACK written as bytes."""
        if self.writer is not None:
            self.writer.write(b"\xb0\x02" + packet_id.to_bytes(2, "big"))

    def wake(self) -> None:
        """Something arrived for the connection's message loop (see :meth:`idle`), or for
        the parked loop (:attr:`on_wake`)."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        elif self.on_wake is not None:
            on_wake, self.on_wake = self.on_wake, None
            on_wake(self)

    async def idle(self) -> None:
        """Wait until :meth:`wake` is called (by a mailbox of this connection, or its end)."""
        self._wake = self._loop.create_future()
        try:
            await self._wake
        finally:
            self._wake = None

    def next_message(self) -> ApplicationMessage:
        """The next message to route, taken now (the loop saw one waiting); as
        :meth:`mqtt_deliver_next_message`, its receipt becomes :attr:`current`."""
        self.settle_current()
        assert self.session is not None
        message = self.session.delivered_message_queue.get_nowait()
        if self._receipts:
            self.current = self._receipts.pop(id(message), None)
        return message

    def disconnected(self) -> asyncio.Future[DisconnectPacket | None]:
        """What ends the message loop: the DISCONNECT (None: connection lost), a future that
        also wakes the loop when it is done."""
        waiter = self._disconnect_waiter
        if waiter is None and self._watched is not None:
            return self._watched  # amqtt let go of the one that ended it: it holds the DISCONNECT
        if waiter is None:  # already ended (amqtt's wait_disconnect then returns None)
            waiter = self._loop.create_future()
            waiter.set_result(None)
        if waiter is not self._watched:  # once: a parked loop asks again each time it runs
            self._watched = waiter
            waiter.add_done_callback(self._ended)
        return waiter

    def _ended(self, _waiter: asyncio.Future[DisconnectPacket | None]) -> None:
        self.wake()

    def inline(
        self, frame: bytes, fields: PublishFields | None = None, request: SubscribeRequest | None = None, /
    ) -> bool:
        """``FramedReader.inline``: queue a QoS 0 or 1 PUBLISH for routing as it is read, and
        write its PUBACK (or, for a withholding publisher, make its receipt) in the same step, so
        acknowledgements keep the order of the PUBLISHes; a client's PUBACK is taken here too
        (:meth:`acknowledged`), a PINGREQ answered, and a SUBSCRIBE queued for the message loop
        as amqtt's ``handle_subscribe`` would (no decoding by amqtt, no task). False leaves the
        packet to amqtt (QoS 2, and anything :func:`~broker._framing.publish_fields` or
        :func:`~broker._framing.subscribe_request` does not read). ``fields`` and ``request``:
        a PUBLISH's or SUBSCRIBE's, if the reader read them already."""
        session = self.session
        first = frame[0]
        if first == _PUBACK and len(frame) == 4 and frame[1] == 2 and session is not None:
            self.acknowledged(int.from_bytes(frame[2:4], "big"))  # no decoding, no task
            return True
        if frame == _PINGREQ and self.writer is not None:
            self.writer.write(_PINGRESP)
            return True
        if first >> 4 == SUBSCRIBE:  # subscribe_request checks its flags
            if request is None:
                request = subscribe_request(frame)
            if request is None or session is None:
                return False
            self._pending_subscriptions.put_nowait(Subscription(*request))
            return True
        if fields is None:
            fields = publish_fields(frame)
        if fields is None or session is None:
            return False
        topic, packet_id, payload = fields
        flags = frame[0] & 0x0F
        qos = (flags >> 1) & 3
        route = self.fast_route
        if (
            route is not None
            and session.delivered_message_queue.empty()
            and route(session, self, topic, payload, qos, packet_id)
        ):
            return True
        message = IncomingApplicationMessage(packet_id, topic, qos, payload, bool(flags & 0x01))
        message.publish_packet = PublishPacket(
            MQTTFixedHeader(PUBLISH, flags), PublishVariableHeader(topic, packet_id), PublishPayload(payload)
        )
        if packet_id is not None and self.inflight is not None:
            if self._receipts is None:
                self._receipts = {}
            self._receipts[id(message)] = self.inflight.receipt(packet_id)
        session.delivered_message_queue.put_nowait(message)
        if packet_id is not None and self.inflight is None and self.writer is not None:
            self.writer.write(puback(packet_id))
        return True

    async def handle_publish(self, publish_packet: PublishPacket) -> None:
        """Override: count the PUBLISH being handled (see :meth:`settle`)."""
        self._enter()
        try:
            await super().handle_publish(publish_packet)
        finally:
            self._leave()

    async def _handle_qos1_message_flow(
        self, app_message: OutgoingApplicationMessage | IncomingApplicationMessage
    ) -> None:
        """Override: an incoming QoS 1 message of a withholding publisher is queued for routing
        with a receipt and *no* PUBACK; the broker writes the PUBACK once durable sinks have
        acknowledged it (``broker._acks``)."""
        inflight = self.inflight
        if inflight is None or app_message.direction != INCOMING or app_message.packet_id is None:
            await super()._handle_qos1_message_flow(app_message)
            return
        if self._receipts is None:
            self._receipts = {}
        self._receipts[id(app_message)] = inflight.receipt(app_message.packet_id)
        assert self.session is not None
        await self.session.delivered_message_queue.put(app_message)

    async def mqtt_deliver_next_message(self) -> ApplicationMessage | None:
        """Override: the message's receipt becomes :attr:`current` while it is routed; a
        receipt no broadcast took (a refused or dropped publish: nothing to store) is answered
        at once."""
        self.settle_current()
        message = await super().mqtt_deliver_next_message()
        if message is not None and self._receipts:
            self.current = self._receipts.pop(id(message), None)
        return message

    def settle_current(self) -> None:
        """Answer the receipt of the message just routed if no broadcast took it."""
        receipt, self.current = self.current, None
        if receipt is not None and not receipt.seal():
            receipt.inflight.release(receipt)

    async def handle_disconnect(self, disconnect: DisconnectPacket | None) -> None:
        """Override: count the DISCONNECT being handled (see :meth:`settle`)."""
        self._enter()
        try:
            await super().handle_disconnect(disconnect)
        finally:
            self._leave()

    async def handle_puback(self, puback: PubackPacket) -> None:
        """Override: as :meth:`acknowledged` (a PUBACK read by amqtt's own loop)."""
        if puback.variable_header is not None:
            self.acknowledged(puback.variable_header.packet_id, puback)

    def acknowledged(self, packet_id: int, puback: PubackPacket | None = None) -> None:
        """The client's PUBACK of ``packet_id``: the message is delivered the moment it is read.

        Dropping it from ``inflight_out`` here, not in the task that waited for the PUBACK,
        means a connection ending right after (the task is then cancelled) cannot leave an
        acknowledged message behind to be delivered twice.
        """
        message = self.session.inflight_out.get(packet_id) if self.session and packet_id else None
        if message is not None and message.qos == QOS_1:
            del self.session.inflight_out[packet_id]  # type: ignore[union-attr]
            self._sunk(packet_id)
        waiter = self._puback_waiters.get(packet_id)
        if waiter is not None:  # a task waits for it (a ping, a QoS 1 flow of amqtt's own)
            if puback is None:
                puback = PubackPacket.build(packet_id)
            if message is not None:
                message.puback_packet = puback
            if not waiter.done():
                waiter.set_result(puback)
        elif self.on_puback is None or not self.on_puback(packet_id):
            self.logger.warning("Received PUBACK for unknown pending message Id: '%s'", packet_id)

    def _sunk(self, packet_id: int) -> None:
        """A durable sink acknowledged ``packet_id``: so does the publisher's receipt it held."""
        receipts: dict[int, Receipt] | None = getattr(self.session, "receipts", None)
        receipt = receipts.pop(packet_id, None) if receipts else None
        if receipt is not None:
            receipt.acknowledged()

    async def handle_pubrec(self, pubrec: PubrecPacket) -> None:
        """Override: remember the PUBREC on the message, so a resend after reconnect is a PUBREL."""
        message = self.session.inflight_out.get(pubrec.packet_id) if self.session else None
        if message is not None and message.qos == QOS_2:
            message.pubrec_packet = pubrec
        await super().handle_pubrec(pubrec)

    async def handle_pubcomp(self, pubcomp: PubcompPacket) -> None:
        """Override: the QoS 2 message is delivered the moment its PUBCOMP is read."""
        message = self.session.inflight_out.get(pubcomp.packet_id) if self.session else None
        if message is not None and message.qos == QOS_2 and message.pubrec_packet is not None:
            message.pubcomp_packet = pubcomp
            del self.session.inflight_out[pubcomp.packet_id]  # type: ignore[union-attr]
            self._sunk(pubcomp.packet_id)
        await super().handle_pubcomp(pubcomp)

    async def _retry_deliveries(self) -> None:
        """Override: no resending from ``start()``. Stock amqtt resends here with a 10 s limit
        per message and *awaits* the acknowledgements inside the CONNACK path; the broker
        instead queues what is left in ``inflight_out`` through the outbox after CONNACK."""

    def send_now(self, message: OutgoingApplicationMessage) -> None:
        """Write a QoS 1 message registered in ``session.inflight_out`` now: no task, no
        future, no packet object (:meth:`deliver` made all three a message). Its PUBACK, read
        by :meth:`acknowledged`, removes it from ``inflight_out`` and tells :attr:`on_puback`.
        A message already sent once (before a reconnect) goes again with DUP set."""
        assert message.packet_id is not None and message.qos == QOS_1 and self.writer is not None
        first = 0x3A if message.publish_packet is not None else 0x32
        message.publish_packet = _SENT  # amqtt's mark of a message sent once: a resend is a DUP
        topic = message.topic.encode()
        self.writer.write(
            _packet(
                first | message.retain,
                len(topic).to_bytes(2, "big") + topic + message.packet_id.to_bytes(2, "big") + message.data,
            )
        )

    def publish_now(self, topic: str, data: bytes | bytearray, retain: bool) -> None:
        """Write a QoS 0 PUBLISH of broker topic ``topic`` now (:meth:`mqtt_publish` made a
        task, a message and a packet object of it); raises :class:`InvalidTopicError` as
        :meth:`relative` does."""
        assert self.writer is not None
        encoded = self._relative(topic).encode()
        self.writer.write(_packet(0x31 if retain else 0x30, len(encoded).to_bytes(2, "big") + encoded + data))

    async def deliver(self, message: OutgoingApplicationMessage) -> None:
        """Send a QoS 1/2 message registered in ``session.inflight_out``; return when acknowledged.

        A message already sent once (before a reconnect) goes again with DUP set; a QoS 2
        message whose PUBREC had arrived continues with PUBREL. Never times out, never
        forgets the message: only its acknowledgement removes it (:meth:`handle_puback`,
        :meth:`handle_pubcomp`).
        """
        packet_id = message.packet_id
        assert packet_id is not None and message.qos in (QOS_1, QOS_2)
        if message.qos == QOS_1 or message.pubrec_packet is None:
            waiters = self._puback_waiters if message.qos == QOS_1 else self._pubrec_waiters
            waiter: asyncio.Future[object] = self._loop.create_future()
            waiters[packet_id] = waiter  # type: ignore[assignment]
            try:
                packet = message.build_publish_packet(dup=message.publish_packet is not None)
                message.publish_packet = packet
                await self._send_packet(packet)
                await waiter
            finally:
                if waiters.get(packet_id) is waiter:
                    del waiters[packet_id]
            if message.qos == QOS_1:
                return
        comp: asyncio.Future[PubcompPacket] = self._loop.create_future()
        self._pubcomp_waiters[packet_id] = comp
        try:
            message.pubrel_packet = PubrelPacket.build(packet_id)
            await self._send_packet(message.pubrel_packet)
            await comp
        finally:
            if self._pubcomp_waiters.get(packet_id) is comp:
                del self._pubcomp_waiters[packet_id]

    async def settle(self, timeout: float = 2.0) -> None:
        """Let the packets already read finish before the reader reports end-of-stream.

        amqtt's reader loop handles each packet in a task and, at end-of-stream, cancels the
        tasks that have not run yet. Over TLS a client's last PUBLISH, its DISCONNECT and the
        end of the stream arrive together (mosquitto_pub, battery devices that publish and
        hang up), so that PUBLISH was lost and the DISCONNECT turned into a lost connection
        (publishing the Last Will). The framed reader awaits this before reporting the end.
        """
        await asyncio.sleep(0)  # the tasks made for packets read so far start now
        if self._busy and self._settled is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._settled.wait()

    def _enter(self) -> None:
        if self._settled is None:
            self._settled = asyncio.Event()
        self._busy += 1
        self._settled.clear()

    def _leave(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self._settled is not None:
            self._settled.set()

    async def start(self) -> None:
        """Override (stock race): arm the disconnect waiter *before* the reader task starts.

        ``BrokerProtocolHandler.start`` creates it after ``ProtocolHandler.start`` has already
        run the reader; a client whose bytes end the reader at once (CONNECT, then garbage)
        signals "closed" while there is no waiter, then gets a fresh one nobody resolves,
        and its connection is never finished (found by tests/integration/broker/test_fuzz.py).
        The rest is ``ProtocolHandler.start`` without its resend (:meth:`_retry_deliveries`),
        and without a reader task when the reader can park at once (nothing buffered yet, on
        plain TCP): the state the reader loop's first turn would leave, without making and
        running a task for it at every connect.
        """
        if self._disconnect_waiter is None or self._disconnect_waiter.done():
            self._disconnect_waiter = self._loop.create_future()
        # ProtocolHandler.start, with events that hold no memory until waited on (broker._mailbox)
        if not self._is_attached():
            raise ProtocolHandlerError("Handler is not attached to a stream")
        self._reader_ready = LazyEvent()
        self._reader_stopped = LazyEvent()
        reader = self.reader
        if isinstance(reader, FramedReader) and reader.park(self._resume_reader):
            self._reader_ready.set()
            self._reader_task = None
        else:
            self._reader_task = asyncio.create_task(self._reader_loop())
            await self._reader_ready.wait()
        if self.keepalive_timeout is not None:  # 0 for every session here: FramedReader keeps it
            self._keepalive_task = self._loop.call_later(self.keepalive_timeout, self.handle_write_timeout)

    async def stop(self) -> None:
        """Override: a parked reader (:meth:`_reader_loop`) is not started again, and a reader
        task woken but not yet started is waited for (amqtt waits for the reader loop to say it
        stopped, which a task cancelled before it starts never does).

        The first stop logs the session key at DEBUG: amqtt logged it when its reader loop
        ended, which a parked reader no longer does when a DISCONNECT ends the connection.
        """
        if not self._stopping and self.session is not None:
            self.logger.debug("%s handler stopping", self.session.client_id)
        self._stopping = True
        if isinstance(self.reader, FramedReader):
            self.reader.unpark()
        task = self._reader_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.wait((task,))
            self._reader_stopped.set()
        await super().stop()

    def _forget(self, task: asyncio.Task[None]) -> None:
        """A packet's task is done: the reader loop no longer cancels it at the end."""
        with contextlib.suppress(ValueError):
            self._running.remove(task)

    def _resume_reader(self) -> None:
        """``FramedReader.park``'s wake-up: run the reader loop again in a task."""
        if not self._stopping:
            self._reader_task = asyncio.create_task(self._reader_loop())

    async def _reader_loop(self) -> None:
        """Override: amqtt's reader loop, which ends while the connection is idle (parks).

        Each turn first asks the reader to park (``FramedReader.park``): with nothing buffered
        on a plain TCP connection, the loop returns and no task waits for the next packet;
        the reader calls :meth:`_resume_reader` to run it again when a packet it does not take
        as it arrives comes, at the end of the stream, or at the keep-alive deadline. The rest
        is amqtt 0.12.1's loop (each packet handled in a task; at the end, those tasks
        cancelled, the connection closed, the handler stopped), without its per-read timeout
        (keep-alive is the reader's).
        """
        assert self.session is not None and self._reader_ready is not None
        reader = self.reader
        running = self._running
        while True:
            try:
                self._reader_ready.set()
                if isinstance(reader, FramedReader) and reader.park(self._resume_reader):
                    self._reader_task = None  # a finished task holds its frame's memory
                    return
                assert reader is not None
                fixed_header = await MQTTFixedHeader.from_stream(reader)
                if not fixed_header:
                    self.logger.debug("%s end of stream: reader stopping", self.session.client_id)
                    break
                if fixed_header.packet_type in (RESERVED_0, RESERVED_15):
                    await self.handle_connection_closed()
                    continue
                packet = await packet_class(fixed_header).from_stream(reader, fixed_header=fixed_header)
                await self.plugins_manager.fire_event(MQTTEvents.PACKET_RECEIVED, packet=packet, session=self.session)
                kind = packet.fixed_header.packet_type if packet.fixed_header is not None else None
                if kind == CONNECT:
                    await self.handle_connect(packet)  # type: ignore[arg-type]  # logs [MQTT-3.1.0-2], ends
                elif kind in _HANDLERS:
                    task = asyncio.create_task(getattr(self, _HANDLERS[kind])(packet))
                    running.append(task)
                    task.add_done_callback(self._forget)
                else:
                    self.logger.warning("%s unhandled packet type: %s", self.session.client_id, kind)
            except (MQTTError, NoDataError):
                self.logger.debug("message discarded")
            except asyncio.CancelledError:
                break
            except Exception as exc:
                self.logger.warning("%s unhandled exception in reader: %r", type(self).__name__, exc)
                break
        for task in running:
            task.cancel()
        await self.handle_connection_closed()
        self._reader_stopped.set()
        await self.stop()

    def relative(self, topic: str) -> str:
        """``topic`` as this client sees it (see class docstring); raises :class:`InvalidTopicError`."""
        return self._relative(topic)

    def _relative(self, topic: str) -> str:
        gateway: _Outward | None = getattr(self.session, "gateway", None)
        if gateway is not None:
            outward = gateway.outward(topic)
            if outward is None:
                raise InvalidTopicError(f"refusing to send {topic!r} to a gateway that did not resolve its device")
            return outward
        namespace: Namespace | None = getattr(self.session, "namespace", None)
        if namespace is not None:
            inside = namespace.unmount(topic)
            if inside is None:
                raise InvalidTopicError(f"refusing to send {topic!r} outside organization {namespace.org_id}")
            return inside
        mount: DeviceMount | None = getattr(self.session, "mount", None)
        if mount is None:
            return topic
        relative = mount.unmount(topic)
        if relative is None:
            raise InvalidTopicError(f"refusing to send {topic!r} to device {mount.device_id}")
        return relative

    async def mqtt_publish(
        self,
        topic: str,
        data: bytes | bytearray,
        qos: int | None,
        retain: bool,
        ack_timeout: int | None = None,
    ) -> OutgoingApplicationMessage:
        """Send PUBLISH; for a device, ``topic`` must be under its mount and loses the prefix."""
        return await super().mqtt_publish(self._relative(topic), data, qos, retain, ack_timeout)

    async def ping(self, topic: str, data: bytes | bytearray, timeout: float) -> float | None:
        """Send ``topic`` at QoS 1 and return milliseconds until its PUBACK; ``None`` on timeout.

        amqtt's own QoS 1 flow gives up after a hard-coded 5 s; Blynk's ping waits longer.
        """
        session = self.session
        if session is None:
            raise AMQTTError("handler is not attached")
        packet_id = session.next_packet_id
        message = OutgoingApplicationMessage(packet_id, self._relative(topic), QOS_1, data, False)
        waiter: asyncio.Future[PubackPacket] = self._loop.create_future()
        session.inflight_out[packet_id] = message
        self._puback_waiters[packet_id] = waiter
        started = self._loop.time()
        try:
            message.publish_packet = message.build_publish_packet()
            await self._send_packet(message.publish_packet)
            async with asyncio.timeout(timeout):
                message.puback_packet = await waiter
            return (self._loop.time() - started) * 1000.0
        except TimeoutError:
            return None
        finally:
            self._puback_waiters.pop(packet_id, None)
            session.inflight_out.pop(packet_id, None)


_SENT = PublishPacket.build("", b"", 1, False, QOS_1, False)
"""What :meth:`MountedHandler.send_now` leaves in a message's ``publish_packet``: amqtt marks a
message sent once by it, and nothing reads an outgoing message's packet here."""


def _packet(first: int, body: bytes | bytearray) -> bytes:
    """A whole MQTT packet: ``first`` byte, remaining length, ``body``."""
    length, encoded = len(body), bytearray((first,))
    while True:
        length, byte = divmod(length, 128)
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(encoded) + body
