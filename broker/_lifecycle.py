"""How connections end: will, handler, session, presence -- exactly once, with a reason.

:class:`LifecycleBroker` replaces amqtt's ``_handle_disconnect`` (will mounting, presence,
keep-alive reasons) and ``_session_monitor``. amqtt 0.12.1 is pinned exactly; these are
private methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from amqtt.mqtt.constants import QOS_1
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from broker._framing import FrameFailure
from broker._handler import MountedHandler
from broker._mailbox import Mailbox
from broker._routing import RoutingBroker, device_key
from broker._session import BrokerSession, Connection
from broker.presence import OfflineReason, offline_payload
from broker.settings import BrokerSettings
from broker.topics import presence_topic

__all__ = ["LifecycleBroker"]

logger = logging.getLogger(__name__)

_REPLACE_WAIT = 5.0  # seconds a replaced connection gets to finish before we move on
_FAILURE_REASONS = {
    FrameFailure.KEEPALIVE_TIMEOUT: OfflineReason.KEEPALIVE_TIMEOUT,
    FrameFailure.PACKET_TOO_LARGE: OfflineReason.PACKET_TOO_LARGE,
    FrameFailure.MALFORMED: OfflineReason.PROTOCOL_ERROR,
}
_NO_WILL = {OfflineReason.DISCONNECT, OfflineReason.REPLACED, OfflineReason.SHUTDOWN, OfflineReason.REVOKED}


class LifecycleBroker(RoutingBroker):
    """amqtt broker whose connections end through :meth:`_finish` (see module docstring)."""

    def __init__(self, settings: BrokerSettings, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.settings = settings
        self.vitals_interval = settings.vitals_interval
        self.stopping = False
        self.shared.queue_limit = settings.max_session_backlog

    async def _replace(self, old: Connection) -> None:
        """End ``old`` because the same identity connected again (Blynk: one per device)."""
        logger.info("replacing connection %s", old.label)
        old.end_reason = OfflineReason.REPLACED
        await self._end_presence(old, OfflineReason.REPLACED)  # before the new one's online
        await old.handler.handle_connection_closed()
        try:
            await asyncio.wait_for(old.finished.wait(), _REPLACE_WAIT)
        except TimeoutError:
            logger.warning("replaced connection %s did not finish in time", old.label)
            await self._finish(old, None)

    async def _handle_disconnect(
        self, client_session: Session, handler: BrokerProtocolHandler, disconnect_waiter: asyncio.Future[Any]
    ) -> None:
        """Override: route amqtt's end-of-connection into :meth:`_finish`, after routing what
        the client published before it left (amqtt's loop would drop messages still queued)."""
        connection = getattr(handler, "connection", None)
        if isinstance(connection, Connection):
            await self._route_leftovers(client_session, handler)
            await self._finish(connection, disconnect_waiter.result())

    async def _client_message_loop(self, client_session: Session, handler: BrokerProtocolHandler) -> None:
        """Override: :meth:`_message_loop`, which never parks here."""
        await self._message_loop(client_session, handler, None)

    async def _message_loop(
        self, client_session: Session, handler: BrokerProtocolHandler, park: Callable[[MountedHandler], None] | None
    ) -> bool:
        """One loop per connection that takes what its mailboxes hold (SUBSCRIBE, UNSUBSCRIBE,
        PUBLISH to route) and, when they are empty, waits for one wake-up -- or, given ``park``,
        returns True at once (parked): no task waits, and the handler's next wake-up calls
        ``park`` (with the handler) to run the loop again. False: the connection ended.

        amqtt's loop kept a task waiting on each of its four sources and made a new one for
        every message (``asyncio.wait`` over four futures each time): four tasks an idle
        connection, and a task and a wait per message routed (README "Performance").
        """
        if not isinstance(handler, MountedHandler):
            await super()._client_message_loop(client_session, handler)
            return False
        loop = asyncio.get_running_loop()
        disconnected = handler.disconnected()
        subscriptions, unsubscriptions = handler._pending_subscriptions, handler._pending_unsubscriptions
        messages = client_session.delivered_message_queue
        if isinstance(messages, Mailbox):
            messages.wake = handler.wake
        parked = False
        try:
            while not disconnected.done():
                if not subscriptions.empty():
                    await self._handle_subscription(client_session, handler, _done(loop, subscriptions.get_nowait()))
                elif not unsubscriptions.empty():
                    request = _done(loop, unsubscriptions.get_nowait())
                    await self._handle_unsubscription(client_session, handler, request)
                elif not messages.empty():
                    message = _done(loop, handler.next_message())
                    routed = await self._handle_message_delivery(client_session, handler, message)
                    handler.settle_current()
                    if not routed:
                        return False
                elif park is not None:
                    handler.on_wake = park
                    parked = True
                    return True
                else:
                    await handler.idle()
            await self._handle_disconnect(client_session, handler, disconnected)
        except asyncio.CancelledError:  # as amqtt's loop: the connection's task goes on to _finish
            return False
        finally:
            if not parked and isinstance(messages, Mailbox) and messages.wake == handler.wake:
                messages.wake = None
        return False

    async def _route_leftovers(self, client_session: Session, handler: BrokerProtocolHandler) -> None:
        """Deliver messages received but not yet routed when the connection ended."""
        queue = client_session.delivered_message_queue
        while not queue.empty():
            message = queue.get_nowait()
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(message)
            await self._handle_message_delivery(client_session, handler, done)

    async def _finish(self, connection: Connection, packet: object) -> None:
        """End a connection exactly once: will, handler, outbox, session, presence."""
        if connection.closed:
            return
        connection.closed = True
        self.stop_vitals(connection)
        reason = self._end_reason(connection, packet)
        session = connection.session
        if reason not in _NO_WILL and session.will_flag and session.will_topic:
            logger.info("publishing last will of %s (%s)", connection.label, reason)
            await self._broadcast_message(None, session.will_topic, session.will_message, session.will_qos)
            if session.will_retain:
                await self.retain_message(None, session.will_topic, session.will_message, session.will_qos)
        if connection.inflight is not None:  # no PUBACK is written to it any more (broker._acks)
            connection.inflight.close()
        await self._stop_handler(connection.handler)
        connection.outbox.cancel_all()
        if self.connections.get(connection.key) is connection:
            del self.connections[connection.key]
        if session.connection is connection:
            if session.transitions.is_connected():
                session.transitions.disconnect()
            self.hand_over_shared(session)
            if session.clean_session:
                self._discard_session(connection.key, session)
            else:  # an MQTT 5 session's expiry interval (broker._routing)
                self.count_down(connection, self._discard_session)
        await self._end_presence(connection, reason)

    def _end_reason(self, connection: Connection, packet: object) -> OfflineReason:
        if connection.end_reason is not None:
            return connection.end_reason
        failure = connection.reader.failure
        if failure is not None:
            logger.warning("closed %s: %s", connection.label, failure.value)
            return _FAILURE_REASONS.get(failure, OfflineReason.PROTOCOL_ERROR)
        if isinstance(packet, DisconnectPacket):
            return OfflineReason.DISCONNECT
        return OfflineReason.CONNECTION_LOST

    def _discard_session(self, key: str, session: Session) -> None:
        """Forget a session and its subscriptions (only if it is still the stored one)."""
        if self._sessions.get(key, (None, None))[0] is session:
            del self._sessions[key]
        if isinstance(session, BrokerSession):
            self.index.remove_subscriber(session)
            self.leave_shared(session)
            self.forget_receipts(session)
        session.clear_queues()

    async def _end_presence(self, connection: Connection, reason: OfflineReason) -> None:
        mount = connection.mount
        if mount is None or connection.offline_sent:
            return
        connection.offline_sent = True
        vitals = connection.writer.meter.snapshot()
        await self._publish_internal(presence_topic(mount.device_id), offline_payload(reason, vitals))

    async def _publish_internal(self, topic: str, payload: bytes) -> None:
        """Publish a broker-originated message (presence) at QoS 1."""
        if self.settings.presence_retain:
            await self.retain_message(None, topic, payload, QOS_1)
        await self._broadcast_message(None, topic, payload, QOS_1)

    async def end_connection(self, connection: Connection, reason: OfflineReason) -> None:
        """End ``connection`` because the broker decided so: presence first, then the socket."""
        if connection.closed or connection.end_reason is not None:
            return
        logger.info("disconnecting %s: %s", connection.label, reason.value)
        connection.end_reason = reason
        await self._end_presence(connection, reason)
        await connection.handler.handle_connection_closed()

    async def disconnect_device(self, device_id: int, reason: OfflineReason) -> bool:
        """End the live connection of a device, if any; True if there was one."""
        connection = self.connections.get(device_key(device_id))
        if connection is None or connection.closed:
            return False
        await self.end_connection(connection, reason)
        return True

    async def announce_shutdown(self) -> None:
        """Mark every connection as ending for shutdown and publish offline presence."""
        self.stopping = True
        for connection in list(self.connections.values()):
            connection.end_reason = OfflineReason.SHUTDOWN
            await self._end_presence(connection, OfflineReason.SHUTDOWN)

    async def _session_monitor(self) -> None:
        """Override: clean sessions are dropped in :meth:`_finish`; only expire persistent ones.

        Stock amqtt scans all sessions every second and can pop a *new* session that reused
        the key of one it decided to expire (it awaits between decision and removal).
        """
        expiry = self.config.session_expiry_interval
        while True:
            await asyncio.sleep(1)
            if expiry is None:
                continue
            cutoff = time.time() - expiry  # amqtt stores wall-clock seconds
            for key, (session, _) in list(self._sessions.items()):
                last = session.last_disconnect_time
                if session.transitions.state == "disconnected" and last is not None and last < cutoff:
                    self._discard_session(key, session)


def _done(loop: asyncio.AbstractEventLoop, value: object) -> asyncio.Future[Any]:
    """A future already holding ``value`` (amqtt's handlers take what they handle as one)."""
    future: asyncio.Future[Any] = loop.create_future()
    future.set_result(value)
    return future
