"""Connection set-up on top of amqtt: listeners, authenticate first, key by identity, limits.

:class:`CoreBroker` replaces ``amqtt.broker.Broker._client_connected`` (and with it the private
``_initialize_client_session`` / ``_handle_client_session`` path, which deletes a session
*before* authenticating -- stock defect 2), ``stream_connected`` (our own socket adapters) and
``_create_ssl_context`` (TLS 1.2+). The way connections end is in :mod:`broker._lifecycle`.
amqtt 0.12.1 is pinned exactly; these are private methods.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Server
from amqtt.contexts import ListenerConfig, ListenerType
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, SERVER_UNAVAILABLE
from amqtt.mqtt.constants import QOS_0, QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from amqtt.utils import gen_client_id

from broker._acks import Inflight
from broker._broadcast import BroadcastLoop
from broker._connect import ConnectRequest, close_quietly, read_connect, refuse
from broker._deadlines import Deadlines
from broker._framing import PUBLISH, FramedReader, publish_info, refusal, subscription_info
from broker._gateway_state import GatewayState
from broker._handler import MountedHandler
from broker._limits import AuthThrottle, PublishRate, RateVerdict
from broker._namespace import NamespaceBroker
from broker._outbox import Outbox
from broker._proxy import NonceCache, ProxyRefused, read_proxy_header, verify_proxy_header
from broker._routing import device_key, publishing
from broker._session import BrokerSession, Connection, KeyedLocks
from broker._transport import FastStream, Meter, MeteredWriter, StreamProtocol, StreamReader
from broker._v5 import link_of
from broker.identity import (
    Authenticator,
    ConnectInfo,
    DeviceIdentity,
    GatewayIdentity,
    Identity,
    IntegrationIdentity,
    ServiceIdentity,
)
from broker.mqtt5 import Reason
from broker.namespace import Namespace, namespace_publish, parse_write
from broker.presence import OfflineReason, online_payload
from broker.settings import BrokerSettings
from broker.topics import DIAG_TOPIC, OTA_TOPIC, DeviceMount, is_uplink_topic, presence_topic, split_gateway_topic

__all__ = ["LISTENERS", "PROXY_LISTENER", "CoreBroker"]

logger = logging.getLogger(__name__)

GATEWAY_TOPIC_ROOM = 128
"""Bytes a gateway's packets may exceed ``max_packet_size`` by: its ``dev/<token>/`` prefix."""
INTEGRATION_MAX_PACKET = 65_536
"""Largest packet of an integration client (Home Assistant's discovery documents need room)."""
PROXY_LISTENER = "proxy"
LISTENERS = {"default": "tcp", "tls": "tls", PROXY_LISTENER: "ws"}
"""amqtt listener name -> the ``transport`` reported in presence."""


class CoreBroker(BroadcastLoop, NamespaceBroker):
    """amqtt broker with openblynk's connection set-up (see module docstring)."""

    def __init__(
        self,
        settings: BrokerSettings,
        authenticator: Authenticator,
        config: dict[str, Any],
        rate_clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(settings, config)
        self._authenticator = authenticator
        self._rate_clock = rate_clock
        self._key_locks = KeyedLocks()
        self.connection_tasks: set[asyncio.Task[Any]] = set()
        """Tasks serving connections now: being set up, or running their loop (not parked)."""
        self.served = 0
        """Client sockets being served, authenticated or not, parked or not."""
        # one bound method each for every connection (a partial a connection took 260 bytes)
        self._wake_parked = self._resume
        self._screen_bound = self._screen
        self._route_uplink_bound = self.route_uplink
        self.deadlines: Deadlines[FramedReader] = Deadlines(FramedReader.expire)
        """Keep-alive deadlines of the parked connections (``FramedReader.park``)."""
        self.auth_throttle = AuthThrottle(settings.auth_failures_per_minute, time.monotonic)
        self._proxy_nonces = NonceCache()

    @staticmethod
    def _create_ssl_context(listener: ListenerConfig) -> ssl.SSLContext:
        """Override: amqtt's context, refusing TLS 1.0 and 1.1 (as Blynk)."""
        context = NamespaceBroker._create_ssl_context(listener)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    async def _create_server_instance(
        self,
        listener_name: str,
        listener_type: ListenerType,
        address: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> Any:
        """Override: a TCP listener's connections read through :class:`FastStream` (what
        ``asyncio.start_server`` makes, with that stream instead of asyncio's)."""
        if listener_type != ListenerType.TCP:
            return await super()._create_server_instance(listener_name, listener_type, address, port, ssl_context)
        loop = asyncio.get_running_loop()
        connected = partial(self.stream_connected, listener_name=listener_name)

        def protocol() -> asyncio.StreamReaderProtocol:
            return StreamProtocol(FastStream(loop=loop), connected, loop=loop)

        return await loop.create_server(protocol, address, port, reuse_address=True, ssl=ssl_context)

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        """Override: our adapters (counting, bounded close) instead of amqtt's."""
        await self._client_connected(listener_name, StreamReader(reader), MeteredWriter(writer, Meter()))

    async def _client_connected(self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        """Override: the whole per-connection flow; one client's failure never escapes it."""
        server = self._servers.get(listener_name)
        task = asyncio.current_task()
        if server is None or task is None or self.stopping or not isinstance(writer, MeteredWriter):
            await close_quietly(writer)
            return
        self.connection_tasks.add(task)
        await server.acquire_connection()
        self.served += 1
        try:
            await self._guard(server, writer, self._serve(listener_name, reader, writer))
        finally:
            self.connection_tasks.discard(task)

    async def _guard(self, server: Server, writer: MeteredWriter, work: Awaitable[bool]) -> None:
        """Await a connection's ``work``: one client's failure never escapes it, and the
        connection's slot (``max_connections``) is given back when it ends, not when it parks
        (``work`` returned True: see :meth:`_run`)."""
        parked = False
        try:
            parked = await work
        except Exception:
            logger.exception("connection handler failed; closing that connection only")
            await close_quietly(writer)
        except asyncio.CancelledError:  # stop() gave up waiting for this connection
            writer.abort()
            raise
        finally:
            if not parked:
                self.served -= 1
                server.release_connection()

    async def _serve(self, listener_name: str, reader: ReaderAdapter, writer: MeteredWriter) -> bool:
        """A connection from its first byte: True if it parked once connected (:meth:`_run`)."""
        if listener_name == PROXY_LISTENER and not await self._read_proxy_header(reader, writer):
            return False
        address, port = writer.peer or (None, None)
        peer = f"{address}:{port}"
        framed = FramedReader(
            reader,
            max_packet_size=self.settings.max_packet_size,
            connect_timeout=self.settings.connect_timeout,
        )
        framed.meter = writer.meter
        framed.deadlines = self.deadlines
        stream = reader.stream if isinstance(reader, StreamReader) else None
        if isinstance(stream, FastStream):  # packets handled as they arrive, once connected
            stream.receive = framed.receive
        request = await read_connect(framed, writer, peer)
        if request is None:
            return False
        if request.v5 is not None:  # an MQTT 5 client: translated at the edge from here on
            request.v5.attach(framed, writer)
        identity = await self._authenticate_request(request, address, peer)
        if isinstance(identity, int):
            await refuse(writer, identity)
            return False
        if request.v5 is not None:
            request.v5.bind(identity)
        transport = LISTENERS.get(listener_name, "tcp")
        connection = await self._open(identity, request, framed, writer, transport)
        connection.listener = listener_name
        if request.v5 is not None:
            request.v5.adopt(connection)  # its session's clean start and expiry are separate
        return await self._run(connection)

    async def _run(self, connection: Connection) -> bool:
        """Run the connection's message loop until the connection ends (it is finished here:
        False) or the loop parks (True): an idle connection then has no task, and the next
        wake-up of its handler runs the loop again in a new one (:meth:`_resume`)."""
        parked = False
        try:
            parked = await self._message_loop(connection.session, connection.handler, self._wake_parked)
            return parked
        finally:
            if not parked:
                await self._finish(connection, None)
                connection.finished.set()

    def _resume(self, handler: MountedHandler) -> None:
        """A parked connection's wake-up (something to handle, or its end): run its loop again."""
        connection = handler.connection
        assert isinstance(connection, Connection)
        server = self._servers[connection.listener]  # kept until the broker is gone
        task = asyncio.create_task(self._guard(server, connection.writer, self._run(connection)))
        self.connection_tasks.add(task)
        task.add_done_callback(self.connection_tasks.discard)

    async def wait_connections(self, timeout: float) -> set[asyncio.Task[Any]]:
        """Wait until no connection has work running (each finished or parked); what still
        runs after ``timeout`` seconds is returned. Wake-ups that start a parked connection's
        loop again while waiting (its end, during shutdown) are waited for too."""
        deadline = self._loop.time() + timeout
        while True:
            await asyncio.sleep(0)  # wake-ups already due start their tasks now
            tasks = set(self.connection_tasks)
            remaining = deadline - self._loop.time()
            if not tasks or remaining <= 0:
                return tasks
            _, pending = await asyncio.wait(tasks, timeout=remaining)
            if pending:
                return pending

    async def _read_proxy_header(self, reader: ReaderAdapter, writer: MeteredWriter) -> bool:
        """Read the bridge's signed PROXY header and take the client's address from it.

        False (connection closed before any CONNECT is read, so no login is counted against
        any address) if it is missing, malformed, unsigned, stale or replayed.
        """
        assert isinstance(reader, StreamReader) and self.settings.proxy_key is not None
        try:
            data = await read_proxy_header(reader.stream, self.settings.connect_timeout)
            now = time.time()
            header = verify_proxy_header(data, self.settings.proxy_key, now)
            if not self._proxy_nonces.first_use(header.nonce, now):
                raise ProxyRefused("PROXY v2 header replayed")
        except ProxyRefused as refused:
            logger.warning("closing proxy connection from %s: %s", writer.peer, refused)
            writer.abort()
            return False
        if header.address is not None:
            writer.peer = (header.address, header.port or 0)
        return True

    async def _authenticate_request(self, request: ConnectRequest, address: str | None, peer: str) -> Identity | int:
        """The identity, or the CONNACK code refusing the client (4, or 3 if auth failed)."""
        if self.auth_throttle.blocked(address):
            logger.debug("refused CONNECT from %s without asking: too many failed logins", peer)
            return BAD_USERNAME_PASSWORD
        info = ConnectInfo(request.username, request.password, request.client_id, address)
        try:
            identity = await self._authenticator.authenticate(info)
        except Exception:
            logger.exception("authenticator raised for %s; answering CONNACK 3", peer)
            return SERVER_UNAVAILABLE
        if isinstance(identity, ServiceIdentity | GatewayIdentity | IntegrationIdentity):
            return identity
        if isinstance(identity, DeviceIdentity) and request.username == "device":
            return identity
        logger.info("refused credentials from %s (user name %r)", peer, request.username)
        if self.auth_throttle.failed(address):
            logger.warning(
                "%s refused logins from %s within a minute; refusing its logins for %.0f s without checking",
                self.auth_throttle.limit,
                address,
                self.auth_throttle.retry_after(address),
            )
        return BAD_USERNAME_PASSWORD

    async def _open(
        self, identity: Identity, request: ConnectRequest, framed: FramedReader, writer: MeteredWriter, transport: str
    ) -> Connection:
        """Install an authenticated connection: replace the old one, CONNACK, presence."""
        gateway: GatewayState | None = None
        if isinstance(identity, DeviceIdentity):
            key = device_key(identity.device_id)
        elif isinstance(identity, GatewayIdentity):
            key = f"gw:{identity.key}:{request.client_id or gen_client_id()}"
            framed.max_packet_size = self.settings.max_packet_size + GATEWAY_TOPIC_ROOM
            gateway = GatewayState(identity)
            will = split_gateway_topic(request.will_topic or "")
            if will is not None:  # resolved now: the session's will is set synchronously
                await self.resolve_token(gateway, will[0])
        elif isinstance(identity, IntegrationIdentity):  # its own sessions, per credentials
            key = f"int:{identity.key}:{request.client_id or gen_client_id()}"
            framed.max_packet_size = INTEGRATION_MAX_PACKET
        else:
            key = f"svc:{request.client_id or gen_client_id()}"
            framed.max_packet_size = self.settings.service_max_packet_size
        async with self._key_locks.hold(key):
            old = self.connections.get(key)
            if old is not None:
                await self._replace(old)
            if isinstance(identity, DeviceIdentity):
                await self.release_gateway_device(identity.device_id, OfflineReason.REPLACED)
            connection = self._new_connection(key, identity, request, framed, writer, transport, gateway)
            if request.v5 is not None:  # what is written from CONNACK on (a resumed session's
                request.v5.connection = connection  # messages: at once) takes this session's properties
            session = connection.session
            self._sessions[key] = (session, connection.handler)
            self.connections[key] = connection
            try:
                await connection.handler.mqtt_connack_authorize(True)
                framed.start_keepalive(request.keep_alive, self.settings.keepalive_grace)
                framed.gate = writer.wait_writable
                framed.writable = writer.writable
                await connection.handler.start()
                await self._after_connack(connection, request)
            except BaseException:
                await self._finish(connection, None)
                connection.finished.set()
                raise
        return connection

    def _new_connection(
        self,
        key: str,
        identity: Identity,
        request: ConnectRequest,
        framed: FramedReader,
        writer: MeteredWriter,
        transport: str,
        gateway: GatewayState | None = None,
    ) -> Connection:
        settings = self.settings
        device = isinstance(identity, DeviceIdentity)
        limit = settings.max_outgoing_queue if device else settings.service_max_outgoing_queue
        session = self._take_session(key, identity, request, gateway)
        session.subscription_limit = settings.max_subscriptions if device else settings.service_max_subscriptions
        if not device:
            session.backlog_limit = settings.max_session_backlog
        handler = MountedHandler(self.plugins_manager, loop=self._loop)
        handler.attach(session, framed, writer)
        framed.before_eof = handler.settle
        framed.inline = handler.inline  # QoS 0/1 PUBLISH handled as read: PUBACKs in order
        address, port = writer.peer or (None, None)
        connection = Connection(
            key,
            identity,
            session,
            handler,
            framed,
            writer,
            address,
            port,
            request.keep_alive,
            transport,
            Outbox(key, limit),
        )
        if device:
            connection.rate = PublishRate(settings.device_rate_limit, settings.rate_abuse_seconds, self._rate_now())
            framed.owner, framed.screen = connection, self._screen_bound
        elif isinstance(identity, IntegrationIdentity):  # the same limit, its own rate (broker._namespace)
            rate = settings.integration_rate_limit
            connection.rate = PublishRate(rate, settings.rate_abuse_seconds, self._rate_now())
            framed.owner, framed.screen = connection, self._screen_bound
        if settings.sink_acks and not isinstance(identity, ServiceIdentity):  # broker._acks
            limit = settings.gateway_inflight_limit if gateway is not None else settings.device_inflight_limit
            connection.inflight = Inflight(writer.write, limit, connection)
            handler.inflight = connection.inflight
            framed.hold = connection.inflight.hold
            link = link_of(writer)
            if link is not None:  # MQTT 5: CONNACK's receive_maximum (broker._v5)
                link.receive_limit = limit
        if device and gateway is None and link_of(writer) is None:  # its uplinks routed as read
            handler.fast_route = self._route_uplink_bound
        writer.meter.started = self._loop.time()
        handler.connection = session.connection = connection
        session.transitions.connect()
        return connection

    def _take_session(
        self, key: str, identity: Identity, request: ConnectRequest, gateway: GatewayState | None = None
    ) -> BrokerSession:
        """The session for ``key``: a fresh one, or the stored one of a persistent service."""
        mount = DeviceMount(identity.device_id) if isinstance(identity, DeviceIdentity) else None
        # Blynk: devices are always clean, and so are gateways (their devices are devices)
        clean = request.clean_session or mount is not None or gateway is not None
        existing = self._sessions.get(key, (None, None))[0]
        if isinstance(existing, BrokerSession) and not clean:
            session, session.parent = existing, 1
        else:
            if existing is not None:
                self._discard_session(key, existing)
            session = BrokerSession(key, mount, request.client_id)
        session.gateway = gateway
        session.namespace = Namespace(identity.org_id) if isinstance(identity, IntegrationIdentity) else None
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
        if request.v5 is not None and request.will_topic is not None:
            session.will_message = request.v5.will_payload()  # with its properties (broker._v5)
        if session.mount is not None and request.will_topic is not None:
            session.will_retain = False
            if is_uplink_topic(request.will_topic):
                session.will_topic = session.mount.mount(request.will_topic)
            else:
                session.will_flag = False
        if session.namespace is not None and request.will_topic is not None:
            if namespace_publish(request.will_topic, request.will_retain) and parse_write(request.will_topic) is None:
                session.will_topic = session.namespace.mount(request.will_topic)
            else:
                logger.info("refused the last will of an integration client: %r", request.will_topic)
                session.will_flag = False
        if session.gateway is not None and request.will_topic is not None:
            session.will_retain = False  # a device's will, through its gateway: never retained
            split = split_gateway_topic(request.will_topic)
            device = session.gateway.cached(split[0])[1] if split is not None else None
            if split is not None and device is not None and is_uplink_topic(split[1]):
                session.will_topic = device.mount.mount(split[1])
            else:
                logger.info("refused the last will of a gateway: %r", request.will_topic)
                session.will_flag = False

    async def _after_connack(self, connection: Connection, request: ConnectRequest) -> None:
        session = connection.session
        mount = session.mount
        if mount is None:
            self.resume(connection)  # what was not acknowledged, then what waited while offline
            return
        online = online_payload(
            ip=connection.address,
            port=connection.port,
            client_id=request.client_id,
            keep_alive=request.keep_alive,
            transport=connection.transport,
        )
        await self._publish_internal(presence_topic(mount.device_id), online)
        self.start_vitals(connection)
        if request.will_topic is not None and not session.will_flag:
            await self.send_diag(session, f'last will topic "{request.will_topic}" refused: not a Blynk uplink topic')
        ota = self.retained.get(mount.mount(OTA_TOPIC))
        if ota is not None:
            self.send_to(connection, ota.topic, ota.data, QOS_0, retain=True)

    def _screen(self, connection: Connection, frame: bytes) -> bool:
        """``FramedReader.screen`` of a device: its rate limit (False drops the packet).

        PUBLISH, SUBSCRIBE and UNSUBSCRIBE each take one token of ``device_rate_limit``. This
        runs before amqtt sees the packet, so a dropped flood costs no task per packet.
        """
        rate = connection.rate
        if rate is None or not frame:
            return True
        kind = frame[0] >> 4
        published = publish_info(frame) if kind == PUBLISH else None
        subscription = subscription_info(frame) if kind != PUBLISH else None
        if published is None and subscription is None:
            return True  # not rated, or unreadable: amqtt handles (or refuses) it
        verdict = rate.check(self._rate_now())
        if verdict is RateVerdict.ACCEPT:
            return True
        if verdict is RateVerdict.ABUSE:
            logger.warning("disconnecting %s: over the rate limit for too long", connection.label)
            connection.end_reason = OfflineReason.RATE_LIMITED
            connection.reader.end()
            return False
        if verdict is RateVerdict.DROP_AND_WARN and connection.mount is not None:
            text = f"rate limit exceeded: {rate.rate:g} messages/s; messages are being dropped"
            self.publish_nowait(connection.mount.mount(DIAG_TOPIC), text.encode(), QOS_0)
        if subscription is not None:  # answered here: the client waits for it, amqtt never sees it
            connection.writer.write(refusal(frame, *subscription))
            return False
        assert published is not None
        return self._drop_publish(connection, published)

    def _rate_now(self) -> float:
        """The rate limit's clock: the injected one, else the event loop's."""
        return self._rate_clock() if self._rate_clock is not None else self._loop.time()

    @staticmethod
    def _drop_publish(connection: Connection, info: tuple[int, int | None]) -> bool:
        """Drop a PUBLISH over the rate limit: QoS 1 is acknowledged here (MQTT 3.1.1 has no
        negative PUBACK); QoS 2 runs amqtt's handshake and is discarded in
        :meth:`_handle_message_delivery`."""
        qos, packet_id = info
        if qos == QOS_1 and packet_id is not None:
            link = link_of(connection.writer)
            if link is not None:  # MQTT 5 says why: 0x97 Quota exceeded
                link.refuse(packet_id, Reason.QUOTA_EXCEEDED)
            if connection.inflight is not None:  # after the PUBACKs it still withholds (in order)
                connection.inflight.answer(packet_id)
            else:
                connection.writer.write(b"\x40\x02" + packet_id.to_bytes(2, "big"))  # PUBACK
        elif qos == QOS_2 and packet_id is not None:
            if connection.drop_ids is None:
                connection.drop_ids = set()
            connection.drop_ids.add(packet_id)
            return True
        return False

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        """Override: discard a QoS 2 message the rate limit dropped once its handshake is done."""
        connection = getattr(client_session, "connection", None)
        message = wait_deliver.result()
        link = link_of(connection.writer) if isinstance(connection, Connection) else None
        if link is not None and message is not None:
            link.carry(message)  # MQTT 5: its PUBLISH's properties go along with its payload
        if isinstance(connection, Connection) and message is not None and message.qos == QOS_2:
            if connection.drop_ids and message.packet_id in connection.drop_ids:
                connection.drop_ids.discard(message.packet_id)
                return True
        retain = bool(message is not None and message.publish_packet and message.publish_packet.retain_flag)
        with publishing(message.qos if message is not None else None, retain):  # its copies: at most its QoS
            return await super()._handle_message_delivery(client_session, handler, wait_deliver)
