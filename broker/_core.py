"""Connection lifecycle on top of amqtt: authenticate first, key by identity, one per device.

:class:`CoreBroker` replaces ``amqtt.broker.Broker._client_connected`` (and with it the private
``_initialize_client_session`` / ``_handle_client_session`` path, which deletes a session
*before* authenticating -- stock defect 2) and ``_handle_disconnect`` (will mounting, presence,
keep-alive reasons). amqtt 0.12.1 is pinned exactly; these are private methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, SERVER_UNAVAILABLE
from amqtt.mqtt.constants import QOS_0, QOS_1
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from amqtt.utils import gen_client_id

from broker._connect import ConnectRequest, close_quietly, read_connect, refuse
from broker._framing import FrameFailure, FramedReader
from broker._handler import MountedHandler
from broker._routing import RoutingBroker, device_key
from broker._session import BrokerSession, Connection, KeyedLocks
from broker.identity import Authenticator, ConnectInfo, DeviceIdentity, Identity, ServiceIdentity
from broker.presence import OfflineReason, offline_payload, online_payload
from broker.settings import BrokerSettings
from broker.topics import OTA_TOPIC, DeviceMount, is_uplink_topic, presence_topic

__all__ = ["CoreBroker"]

logger = logging.getLogger(__name__)

_REPLACE_WAIT = 5.0  # seconds a replaced connection gets to finish before we move on
_FAILURE_REASONS = {
    FrameFailure.KEEPALIVE_TIMEOUT: OfflineReason.KEEPALIVE_TIMEOUT,
    FrameFailure.PACKET_TOO_LARGE: OfflineReason.PACKET_TOO_LARGE,
    FrameFailure.MALFORMED: OfflineReason.PROTOCOL_ERROR,
}
_NO_WILL = {OfflineReason.DISCONNECT, OfflineReason.REPLACED, OfflineReason.SHUTDOWN, OfflineReason.REVOKED}


class CoreBroker(RoutingBroker):
    """amqtt broker with openblynk's connection lifecycle (see module docstring)."""

    def __init__(self, settings: BrokerSettings, authenticator: Authenticator, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.settings = settings
        self._authenticator = authenticator
        self.connections: dict[str, Connection] = {}
        self._key_locks = KeyedLocks()
        self.connection_tasks: set[asyncio.Task[Any]] = set()
        self.stopping = False

    async def _client_connected(self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        """Override: the whole per-connection flow; one client's failure never escapes it."""
        server = self._servers.get(listener_name)
        task = asyncio.current_task()
        if server is None or task is None or self.stopping:
            await close_quietly(writer)
            return
        self.connection_tasks.add(task)
        await server.acquire_connection()
        try:
            await self._serve(reader, writer)
        except Exception:
            logger.exception("connection handler failed; closing that connection only")
            await close_quietly(writer)
        finally:
            server.release_connection()
            self.connection_tasks.discard(task)

    async def _serve(self, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        address, port = writer.get_peer_info() or (None, None)
        peer = f"{address}:{port}"
        framed = FramedReader(
            reader,
            max_packet_size=self.settings.max_packet_size,
            connect_timeout=self.settings.connect_timeout,
        )
        request = await read_connect(framed, writer, peer)
        if request is None:
            return
        identity = await self._authenticate_request(request, address, peer)
        if not isinstance(identity, DeviceIdentity | ServiceIdentity):
            await refuse(writer, identity)
            return
        connection = await self._open(identity, request, framed, writer, (address, port))
        try:
            await self._client_message_loop(connection.session, connection.handler)
        finally:
            await self._finish(connection, None)
            connection.finished.set()

    async def _authenticate_request(self, request: ConnectRequest, address: str | None, peer: str) -> Identity | int:
        """The identity, or the CONNACK code refusing the client (4, or 3 if auth failed)."""
        info = ConnectInfo(request.username, request.password, request.client_id, address)
        try:
            identity = await self._authenticator.authenticate(info)
        except Exception:
            logger.exception("authenticator raised for %s; answering CONNACK 3", peer)
            return SERVER_UNAVAILABLE
        if isinstance(identity, ServiceIdentity):
            return identity
        if isinstance(identity, DeviceIdentity) and request.username == "device":
            return identity
        logger.info("refused credentials from %s (user name %r)", peer, request.username)
        return BAD_USERNAME_PASSWORD

    async def _open(
        self,
        identity: Identity,
        request: ConnectRequest,
        framed: FramedReader,
        writer: WriterAdapter,
        peer: tuple[str | None, int | None],
    ) -> Connection:
        """Install an authenticated connection: replace the old one, CONNACK, presence."""
        if isinstance(identity, DeviceIdentity):
            key = device_key(identity.device_id)
        else:
            key = f"svc:{request.client_id or gen_client_id()}"
            framed.max_packet_size = self.settings.service_max_packet_size
        async with self._key_locks.hold(key):
            old = self.connections.get(key)
            if old is not None:
                await self._replace(old)
            session = self._take_session(key, identity, request)
            handler = MountedHandler(self.plugins_manager, loop=self._loop)
            handler.attach(session, framed, writer)
            connection = Connection(key, identity, session, handler, framed, peer[0], peer[1], request.keep_alive)
            handler.connection = session.connection = connection
            session.transitions.connect()
            self._sessions[key] = (session, handler)
            self.connections[key] = connection
            try:
                await handler.mqtt_connack_authorize(True)
                framed.start_keepalive(request.keep_alive, self.settings.keepalive_grace)
                await handler.start()
                await self._after_connack(connection, request)
            except BaseException:
                await self._finish(connection, None)
                connection.finished.set()
                raise
        return connection

    def _take_session(self, key: str, identity: Identity, request: ConnectRequest) -> BrokerSession:
        """The session for ``key``: a fresh one, or the stored one of a persistent service."""
        mount = DeviceMount(identity.device_id) if isinstance(identity, DeviceIdentity) else None
        clean = request.clean_session or mount is not None  # Blynk: devices are always clean
        existing = self._sessions.get(key, (None, None))[0]
        if isinstance(existing, BrokerSession) and not clean:
            session, session.parent = existing, 1
        else:
            if existing is not None:
                self._discard_session(key, existing)
            session = BrokerSession(key, mount, request.client_id)
        session.client_sent_id = request.client_id
        session.clean_session = clean
        session.username = request.username
        # keep_alive stays 0 on purpose: amqtt's reader loop would otherwise wrap every read
        # in wait_for(keep_alive) and cancel it mid-packet; FramedReader enforces keep-alive.
        session.keep_alive = 0
        self._set_will(session, request)
        return session

    def _set_will(self, session: BrokerSession, request: ConnectRequest) -> None:
        session.will_flag = request.will_topic is not None
        session.will_topic, session.will_message = request.will_topic, request.will_message
        session.will_qos, session.will_retain = request.will_qos, request.will_retain
        if session.mount is not None and request.will_topic is not None:
            session.will_retain = False
            if is_uplink_topic(request.will_topic):
                session.will_topic = session.mount.mount(request.will_topic)
            else:
                session.will_flag = False

    async def _after_connack(self, connection: Connection, request: ConnectRequest) -> None:
        session = connection.session
        mount = session.mount
        if mount is None:
            await self._publish_session_retained_messages(session)  # queued while offline
            return
        await self._publish_internal(
            presence_topic(mount.device_id),
            online_payload(
                ip=connection.address,
                port=connection.port,
                client_id=request.client_id,
                keep_alive=request.keep_alive,
            ),
        )
        if request.will_topic is not None and not session.will_flag:
            await self.send_diag(session, f'last will topic "{request.will_topic}" refused: not a Blynk uplink topic')
        ota = self.retained.get(mount.mount(OTA_TOPIC))
        if ota is not None:
            publish = connection.handler.mqtt_publish(ota.topic, ota.data, QOS_0, retain=True)
            self._tasks_queue.append(asyncio.ensure_future(publish))

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
        """Override: route amqtt's end-of-connection into :meth:`_finish`."""
        connection = getattr(handler, "connection", None)
        if isinstance(connection, Connection):
            await self._finish(connection, disconnect_waiter.result())

    async def _finish(self, connection: Connection, packet: object) -> None:
        """End a connection exactly once: will, handler, session, presence."""
        if connection.closed:
            return
        connection.closed = True
        reason = self._end_reason(connection, packet)
        session = connection.session
        if reason not in _NO_WILL and session.will_flag and session.will_topic:
            logger.info("publishing last will of %s (%s)", connection.label, reason)
            await self._broadcast_message(None, session.will_topic, session.will_message, session.will_qos)
            if session.will_retain:
                await self.retain_message(None, session.will_topic, session.will_message, session.will_qos)
        await self._stop_handler(connection.handler)
        if self.connections.get(connection.key) is connection:
            del self.connections[connection.key]
        if session.connection is connection:
            if session.transitions.is_connected():
                session.transitions.disconnect()
            if session.clean_session:
                self._discard_session(connection.key, session)
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
        session.clear_queues()

    async def _end_presence(self, connection: Connection, reason: OfflineReason) -> None:
        mount = connection.mount
        if mount is None or connection.offline_sent:
            return
        connection.offline_sent = True
        await self._publish_internal(presence_topic(mount.device_id), offline_payload(reason))

    async def _publish_internal(self, topic: str, payload: bytes) -> None:
        """Publish a broker-originated message (presence) at QoS 1."""
        if self.settings.presence_retain:
            await self.retain_message(None, topic, payload, QOS_1)
        await self._broadcast_message(None, topic, payload, QOS_1)

    async def disconnect_device(self, device_id: int, reason: OfflineReason) -> bool:
        """End the live connection of a device, if any; True if there was one."""
        connection = self.connections.get(device_key(device_id))
        if connection is None or connection.closed:
            return False
        logger.info("disconnecting %s: %s", connection.label, reason.value)
        connection.end_reason = reason
        await self._end_presence(connection, reason)
        await connection.handler.handle_connection_closed()
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
