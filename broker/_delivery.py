"""Getting messages out: bounded per-connection sending, ping timing, vitals, offline queues.

:class:`DeliveryBroker` is the bottom layer of openblynk's broker (``amqtt.broker.Broker`` <-
``DeliveryBroker`` <- ``RoutingBroker`` <- ``CoreBroker``). Every message to a client goes
through :meth:`DeliveryBroker.send_to`, which uses the connection's bounded
:class:`~broker._outbox.Outbox` instead of amqtt's broker-wide, unbounded task deque.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from amqtt.broker import Broker
from amqtt.mqtt.constants import QOS_0, QOS_1
from amqtt.session import Session

from broker._session import BrokerSession, Connection
from broker.presence import PING_TIMEOUT, OfflineReason, ping_payload, ping_topic, vitals_payload, vitals_topic

__all__ = ["DeliveryBroker"]

logger = logging.getLogger(__name__)


class DeliveryBroker(Broker):
    """amqtt ``Broker`` whose sending to each client is bounded, with ping and vitals."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.connections: dict[str, Connection] = {}
        self.background: set[asyncio.Task[Any]] = set()

    async def end_connection(self, connection: Connection, reason: OfflineReason) -> None:
        """End ``connection`` for ``reason`` (implemented by the connection lifecycle layer)."""
        raise NotImplementedError

    def send_to(self, connection: Connection, topic: str, data: bytes | bytearray, qos: int, retain: bool) -> bool:
        """Queue one PUBLISH to ``connection``; False if it was dropped (outbox full or closed)."""
        if connection.closed:
            return False
        handler = connection.handler
        task = connection.outbox.push(qos, lambda: handler.mqtt_publish(topic, data, qos, retain=retain))
        if task is None:
            self._check_overflow(connection)
        return task is not None

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

    def start_vitals(self, connection: Connection, interval: float) -> None:
        """Publish ``sys/vitals/<id>`` for a device connection every ``interval`` seconds."""
        mount = connection.mount
        if mount is None or connection.closed:
            return
        payload = vitals_payload(connection.writer.meter.snapshot())
        if connection.vitals_timer is not None:  # not the first call: a report is due
            self.publish_nowait(vitals_topic(mount.device_id), payload, QOS_0)
        connection.vitals_timer = self._loop.call_later(interval, self.start_vitals, connection, interval)

    # ---- queues of persistent sessions and shutdown ---------------------------------------

    async def _retain_broadcast_message(self, broadcast: dict[str, Any], qos: int, target_session: Session) -> None:
        """Override: queue for an offline persistent session, at most ``offline_limit`` messages."""
        if isinstance(target_session, BrokerSession):
            if target_session.retained_messages.qsize() >= target_session.offline_limit:
                if not target_session.offline_dropped:
                    logger.warning("offline queue of %s is full; dropping new messages", target_session.client_id)
                target_session.offline_dropped += 1
                return
        await super()._retain_broadcast_message(broadcast, qos, target_session)

    async def _publish_session_retained_messages(self, session: Session) -> None:
        """Override: send what was queued while offline through the connection's outbox.

        Stock amqtt sends these with RETAIN=1; they match an established subscription, so
        [MQTT-3.3.1-9] wants RETAIN=0 (a subscriber may skip retained, i.e. stale, messages).
        """
        if not isinstance(session, BrokerSession) or session.connection is None:
            return
        connection = session.connection
        session.offline_dropped = 0
        while not session.retained_messages.empty():
            message = session.retained_messages.get_nowait()
            self.send_to(connection, message.topic, message.data, message.qos or QOS_0, retain=False)

    async def drain_broadcasts(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until queued broadcasts are sent and acknowledged."""
        deadline = self._loop.time() + timeout
        while self._loop.time() < deadline:
            if self._broadcast_queue.empty() and not any(c.outbox.tasks for c in self.connections.values()):
                return
            await asyncio.sleep(0.01)
