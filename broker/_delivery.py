"""Getting messages out: bounded per-connection sending, ping timing, vitals, session backlogs.

:class:`DeliveryBroker` is the bottom layer of openblynk's broker (``amqtt.broker.Broker`` <-
``DeliveryBroker`` <- ``RoutingBroker`` <- ``CoreBroker``). Every message to a client goes
through :meth:`DeliveryBroker.send_to`, which uses the connection's bounded
:class:`~broker._outbox.Outbox` instead of amqtt's broker-wide, unbounded task deque.

QoS 1/2 messages are at-least-once across reconnects of a persistent session (the backend's
ingest subscriber): each is registered in ``session.inflight_out`` when it enters the outbox
and leaves only with its acknowledgement (:mod:`broker._handler`). What does not fit in the
outbox, and everything that arrives while the session is offline, waits in the session's
bounded backlog and moves into the outbox as acknowledgements free room. On reconnect,
:meth:`DeliveryBroker.resume` sends the unacknowledged messages again, oldest first, then the
backlog. Clean sessions (every device) keep the stock rule: a QoS 1 message that finds the
outbox full disconnects the client as a slow consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from amqtt.broker import Broker
from amqtt.mqtt.constants import QOS_0, QOS_1, QOS_2
from amqtt.session import OutgoingApplicationMessage, Session

from broker._acks import Receipt
from broker._deadlines import Deadlines
from broker._session import BrokerSession, Connection, Pending
from broker._v5 import expired, link_of
from broker.errors import InvalidTopicError
from broker.presence import PING_TIMEOUT, OfflineReason, ping_payload, ping_topic, vitals_payload, vitals_topic

__all__ = ["DeliveryBroker"]

logger = logging.getLogger(__name__)


class DeliveryBroker(Broker):
    """amqtt ``Broker`` whose sending to each client is bounded, with ping and vitals."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.connections: dict[str, Connection] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self.vitals: Deadlines[Connection] = Deadlines(self._vitals_due)
        """When each device connection's next ``sys/vitals`` report is due."""
        self.vitals_interval = 60.0
        """Seconds between a device connection's ``sys/vitals`` reports."""

    async def end_connection(self, connection: Connection, reason: OfflineReason) -> None:
        """End ``connection`` for ``reason`` (implemented by the connection lifecycle layer)."""
        raise NotImplementedError

    def send_to(
        self,
        connection: Connection,
        topic: str,
        data: bytes | bytearray,
        qos: int,
        retain: bool,
        origin: object | None = None,
        receipt: Receipt | None = None,
    ) -> bool:
        """Queue one PUBLISH to ``connection``; False if it was dropped (outbox full or closed).

        A QoS 1/2 message for a persistent session is never dropped for lack of room: it waits
        in the session's backlog (bounded by ``backlog_limit``) instead. ``receipt``: the
        publisher's withheld PUBACK this copy holds (a durable session only, ``broker._acks``).
        """
        if expired(data):  # MQTT 5's message expiry: not started towards this receiver in time
            return False
        session = connection.session
        persistent = qos != QOS_0 and not session.clean_session
        if persistent and (session.backlog or connection.closed or len(connection.outbox) >= connection.outbox.limit):
            return self.to_backlog(session, topic, data, qos, origin, receipt)
        if connection.closed:
            return False
        if session.gateway is not None:
            session.gateway.count_out(topic, data, qos)
        if qos == QOS_0:
            if not connection.outbox.room(QOS_0, connection.writer.writable()):
                return False
            link = link_of(connection.writer)
            if link is not None:
                link.sending(data)  # an MQTT 5 receiver gets what the payload carries (broker._v5)
            try:
                connection.handler.publish_now(topic, data, retain)
            except InvalidTopicError as exc:
                logger.warning("%s: %s", connection.label, exc)
                if link is not None:
                    link.leaving_0.pop()
                return False
            return True
        if len(connection.outbox) >= connection.outbox.limit:
            connection.outbox.overflowed = True
            sent = False
        else:
            message = self._register(connection, topic, data, qos, retain, origin, receipt)
            if message is None:
                return False
            sent = self._push_reliable(connection, message)
        if not sent:
            self._check_overflow(connection)
        return sent

    @staticmethod
    def _register(
        connection: Connection,
        topic: str,
        data: bytes | bytearray,
        qos: int,
        retain: bool,
        origin: object | None = None,
        receipt: Receipt | None = None,
    ) -> OutgoingApplicationMessage | None:
        """A QoS 1/2 message with its packet id, recorded in ``inflight_out`` until acknowledged."""
        try:
            relative = connection.handler.relative(topic)
        except InvalidTopicError as exc:
            logger.warning("%s: %s", connection.label, exc)
            return None
        session = connection.session
        packet_id = session.next_packet_id
        message = OutgoingApplicationMessage(packet_id, relative, qos, data, retain)
        session.inflight_out[packet_id] = message
        if origin is None:
            session.shared_ids.pop(packet_id, None)  # a reused packet id
        else:
            session.shared_ids[packet_id] = (origin, topic)
        if receipt is None:
            session.receipts.pop(packet_id, None)
        else:
            session.receipts[packet_id] = receipt
        return message

    def _push_reliable(self, connection: Connection, message: OutgoingApplicationMessage) -> bool:
        """Start delivering a registered QoS 1/2 message (False: the outbox is full); when it
        is acknowledged, refill from the backlog. QoS 1 is written at once and counted in the
        outbox until its PUBACK (:meth:`_acknowledged`); QoS 2 keeps a task for its flow."""
        handler, outbox = connection.handler, connection.outbox
        if message.qos == QOS_1:
            if connection.closed or not outbox.room(QOS_1):
                return False
            if handler.on_puback is None:
                handler.on_puback = lambda packet_id: self._acknowledged(connection, packet_id)
            assert message.packet_id is not None
            outbox.sent(message.packet_id)
            handler.send_now(message)
            return True
        task = outbox.push(message.qos or QOS_2, lambda: handler.deliver(message))
        if task is not None and not connection.session.clean_session:
            task.add_done_callback(lambda _task: self._refill(connection))
        return task is not None

    def _acknowledged(self, connection: Connection, packet_id: int) -> bool:
        """The PUBACK of a QoS 1 message :meth:`_push_reliable` wrote; whether it was one."""
        if not connection.outbox.acknowledged(packet_id):
            return False
        if not connection.session.clean_session:
            self._refill(connection)
        return True

    def to_backlog(
        self,
        session: BrokerSession,
        topic: str,
        data: bytes | bytearray,
        qos: int,
        origin: object | None = None,
        receipt: Receipt | None = None,
    ) -> bool:
        """Keep a QoS 1/2 message for a persistent session until its connection has room.

        Past ``backlog_limit`` a new message is dropped, unless it holds a publisher's withheld
        PUBACK (``broker._acks``): those are kept (the publishers' inflight limits bound them),
        after the backlog forgets the ones whose publisher has gone (it resends them anyway).
        """
        if len(session.backlog) >= session.backlog_limit and receipt is not None:
            session.backlog = deque(p for p in session.backlog if p.receipt is None or not p.receipt.inflight.closed)
        elif len(session.backlog) >= session.backlog_limit:
            if not session.backlog_dropped:
                logger.warning(
                    "backlog of %s is full (%d messages); dropping new messages",
                    session.client_id,
                    session.backlog_limit,
                )
            session.backlog_dropped += 1
            return False
        session.backlog.append(Pending(topic, data, qos, origin, receipt))
        return True

    def _refill(self, connection: Connection) -> None:
        """Move backlog messages into the outbox while it has room."""
        session = connection.session
        outbox = connection.outbox
        while (
            session.backlog
            and not connection.closed
            and session.connection is connection
            and len(outbox) < outbox.limit
        ):
            pending = session.backlog.popleft()
            if expired(pending.data):
                continue
            message = self._register(
                connection, pending.topic, pending.data, pending.qos, False, pending.origin, pending.receipt
            )
            if message is not None:
                self._push_reliable(connection, message)

    def resume(self, connection: Connection) -> None:
        """After CONNACK of a resumed session: resend what was not acknowledged, then the backlog."""
        session = connection.session
        for message in list(session.inflight_out.values()):
            if message.qos in (QOS_1, QOS_2):
                self._push_reliable(connection, message)
        if session.backlog_dropped:
            logger.warning(
                "%s: %d messages were dropped while its backlog was full", connection.label, session.backlog_dropped
            )
            session.backlog_dropped = 0
        self._refill(connection)

    def _check_overflow(self, connection: Connection) -> None:
        if connection.outbox.overflowed and connection.end_reason is None and not connection.closed:
            logger.warning("disconnecting %s: it does not read what it is sent", connection.label)
            self.spawn(self.end_connection(connection, OfflineReason.SLOW_CONSUMER))

    def spawn(self, coroutine: Any) -> None:
        """Run a broker-internal coroutine in the background, keeping a reference to it."""
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def publish_nowait(self, topic: str, payload: bytes, qos: int) -> None:
        """Broadcast a broker-originated message from synchronous code (timers, callbacks)."""
        self._broadcast_queue.put_nowait({"session": None, "topic": topic, "data": payload, "qos": qos})

    # ---- ping and vitals ----------------------------------------------------------------

    def send_ping(self, session: BrokerSession | None, device_id: int, topic: str, data: bytes | bytearray) -> None:
        """Deliver ``d/<id>/downlink/ping`` at QoS 1 and report the round trip on ``sys/ping/<id>``."""
        connection = session.connection if session is not None else None
        if connection is None or connection.closed or session is None or session.transitions.state != "connected":
            self.publish_nowait(ping_topic(device_id), ping_payload(None, offline=True), QOS_0)
            return
        handler = connection.handler
        task = connection.outbox.push(QOS_1, lambda: handler.ping(topic, data, PING_TIMEOUT))
        if task is None:
            self.publish_nowait(ping_topic(device_id), ping_payload(None), QOS_0)
            self._check_overflow(connection)
            return
        task.add_done_callback(lambda done: self._ping_done(device_id, done))

    def _ping_done(self, device_id: int, task: asyncio.Task[Any]) -> None:
        rtt = None
        if not task.cancelled() and task.exception() is None:
            rtt = task.result()
        self.publish_nowait(ping_topic(device_id), ping_payload(rtt), QOS_0)

    def start_vitals(self, connection: Connection) -> None:
        """Publish ``sys/vitals/<id>`` for a device connection every :attr:`vitals_interval`
        seconds, starting one interval from now."""
        if connection.mount is None or connection.closed:
            return
        connection.vitals_slot = self.vitals.add(connection, self._loop.time() + self.vitals_interval)

    def stop_vitals(self, connection: Connection) -> None:
        """No more ``sys/vitals`` reports of ``connection`` (it ends)."""
        if connection.vitals_slot is not None:
            self.vitals.discard(connection, connection.vitals_slot)
            connection.vitals_slot = None

    def _vitals_due(self, connection: Connection) -> None:
        connection.vitals_slot = None
        mount = connection.mount
        if mount is None or connection.closed:
            return
        self.publish_nowait(vitals_topic(mount.device_id), vitals_payload(connection.writer.meter.snapshot()), QOS_0)
        self.start_vitals(connection)

    # ---- persistent sessions and shutdown ---------------------------------------------------

    async def _retain_broadcast_message(self, broadcast: dict[str, Any], qos: int, target_session: Session) -> None:
        """Override: an offline persistent session keeps the message in its bounded backlog."""
        if isinstance(target_session, BrokerSession):
            self.to_backlog(target_session, broadcast["topic"], broadcast["data"], qos)
            return
        await super()._retain_broadcast_message(broadcast, qos, target_session)

    async def drain_broadcasts(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until queued broadcasts are sent and acknowledged."""
        deadline = self._loop.time() + timeout
        while self._loop.time() < deadline:
            if self._broadcast_queue.empty() and not any(len(c.outbox) for c in self.connections.values()):
                return
            await asyncio.sleep(0.01)
