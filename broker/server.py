"""The public broker object: :class:`MqttBroker`, a facade over the amqtt-based core.

Nothing outside ``broker/`` imports amqtt; this module is where amqtt's start-up errors are
converted into :mod:`broker.errors`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from amqtt.errors import BrokerError as AmqttBrokerError

from broker._bridges import BridgeSession, bridge_sessions, find_bridge
from broker._core import PROXY_LISTENER, CoreBroker
from broker._session import BrokerSession
from broker.errors import BrokerStateError, ListenerError
from broker.identity import Authenticator, DeviceIdentity
from broker.presence import OfflineReason
from broker.settings import BrokerSettings

__all__ = ["BridgeSession", "GatewaySession", "MqttBroker", "SessionQueues"]

logger = logging.getLogger(__name__)
logging.getLogger("transitions").setLevel(logging.WARNING)  # amqtt's state machines chat at INFO

_TCP, _TLS = "default", "tls"
_PROXY_HOST = "127.0.0.1"  # the proxy listener: never reachable from outside (and its headers are signed)
_TASKS_WAIT = 5.0  # seconds stop() waits for connection handlers to return


def _bind(host: str, port: int) -> str:
    return f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class SessionQueues:
    """How many messages wait where, for one session (see :meth:`MqttBroker.session_queues`)."""

    outgoing: int
    """Deliveries not yet written or (QoS 1) acknowledged; at most ``max_outgoing_queue``."""
    inflight: int
    """QoS 1/2 messages written and awaiting the client's acknowledgement."""
    incoming: int
    """Messages received from the client and not yet routed."""
    backlog: int
    """QoS 1/2 messages waiting for a persistent session: it is offline, or its outgoing queue
    is full; at most ``max_session_backlog``."""
    dropped: int
    """QoS 0 messages dropped because ``outgoing`` was full (this connection), plus QoS 1/2
    messages a full backlog refused."""


@dataclass(frozen=True, slots=True)
class GatewaySession:
    """One connected gateway (see :meth:`MqttBroker.gateway_sessions`)."""

    key: str
    client_id: str
    address: str | None
    port: int | None
    devices_online: int
    traffic: dict[str, int]
    """``msgs_in``, ``msgs_out``, ``bytes_in``, ``bytes_out``, ``connected_for_s``."""


class MqttBroker:
    """The embedded MQTT broker speaking Blynk's device API.

    Args:
        settings: listeners and limits.
        authenticator: turns CONNECT credentials into a device or service identity.
        rate_clock: the clock (seconds) of the per-device rate limit; the event loop's by
            default. Tests pass one they move by hand, so counts do not depend on speed.

    Use ``await start()`` / ``await stop()`` or ``async with MqttBroker(...) as broker``.
    May be constructed outside a running event loop; amqtt objects are created in ``start()``.
    """

    def __init__(
        self, settings: BrokerSettings, authenticator: Authenticator, rate_clock: Callable[[], float] | None = None
    ) -> None:
        self._settings = settings
        self._authenticator = authenticator
        self._rate_clock = rate_clock
        self._core: CoreBroker | None = None
        self._port: int | None = None
        self._tls_port: int | None = None
        self._proxy_port: int | None = None

    @property
    def settings(self) -> BrokerSettings:
        """The settings this broker was built with."""
        return self._settings

    @property
    def port(self) -> int:
        """The bound plain-TCP port (the real one when ``settings.port`` was 0)."""
        if self._port is None:
            raise BrokerStateError("broker is not started")
        return self._port

    @property
    def tls_port(self) -> int | None:
        """The bound TLS port, or ``None`` if TLS is disabled."""
        return self._tls_port

    @property
    def proxy_port(self) -> int | None:
        """The bound port of the (signed) PROXY-protocol listener on 127.0.0.1, or ``None`` if disabled."""
        return self._proxy_port

    def _config(self) -> dict[str, Any]:
        settings = self._settings
        listeners: dict[str, Any] = {_TCP: {"type": "tcp", "bind": _bind(settings.host, settings.port)}}
        if settings.tls_port is not None:
            listeners[_TLS] = {
                "type": "tcp",
                "bind": _bind(settings.host, settings.tls_port),
                "ssl": True,
                "certfile": settings.certfile,
                "keyfile": settings.keyfile,
            }
        if settings.proxy_port is not None:
            listeners[PROXY_LISTENER] = {"type": "tcp", "bind": _bind(_PROXY_HOST, settings.proxy_port)}
        # "plugins": {} loads no plugin at all: no anonymous access, no $SYS, no topic plugins;
        # authentication and ACL are done by CoreBroker itself.
        return {"listeners": listeners, "plugins": {}}

    async def start(self) -> None:
        """Bind the listeners and start serving.

        Raises:
            BrokerStateError: already started.
            ListenerError: a listener could not be opened.
        """
        if self._core is not None:
            raise BrokerStateError("broker already started")
        core = CoreBroker(self._settings, self._authenticator, self._config(), self._rate_clock)
        try:
            await core.start()
        except (AmqttBrokerError, OSError) as exc:
            raise ListenerError(f"cannot start MQTT listeners: {exc}") from exc
        self._core = core
        self._port = self._bound_port(core, _TCP)
        self._tls_port = self._bound_port(core, _TLS) if self._settings.tls_port is not None else None
        self._proxy_port = self._bound_port(core, PROXY_LISTENER) if self._settings.proxy_port is not None else None
        logger.info(
            "MQTT broker listening on %s:%s (TLS: %s, PROXY listener on %s: %s)",
            self._settings.host,
            self._port,
            self._tls_port,
            _PROXY_HOST,
            self._proxy_port,
        )

    @staticmethod
    def _bound_port(core: CoreBroker, listener: str) -> int:
        instance = core._servers[listener].instance
        sockets = getattr(instance, "sockets", None)  # asyncio.Server, or uvloop's Server
        assert sockets, f"listener {listener} has no socket"
        port = sockets[0].getsockname()[1]
        assert isinstance(port, int)
        return port

    async def stop(self) -> None:
        """Publish offline presence for connected devices, then close everything."""
        core = self._core
        if core is None:
            return
        self._core = None
        await core.announce_shutdown()
        await core.drain_broadcasts(self._settings.shutdown_grace)
        await core.shutdown()
        pending = await core.wait_connections(_TASKS_WAIT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        core.deadlines.cancel()
        core.vitals.cancel()
        self._port = self._tls_port = self._proxy_port = None
        logger.info("MQTT broker stopped")

    async def __aenter__(self) -> MqttBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def disconnect_device(self, device_id: int) -> bool:
        """Drop a device's live connection because its credentials were revoked.

        Its presence goes offline with reason ``revoked`` and no Last Will is published. A
        device reconnecting with the old token is then refused by the authenticator. Every
        gateway forgets the device too (its token, its subscriptions; offline if it was online
        through one).

        Returns:
            True if the device was connected (directly).
        """
        if self._core is None:
            return False
        await self._core.forget_gateway_device(device_id)
        return await self._core.disconnect_device(device_id, OfflineReason.REVOKED)

    async def disconnect_gateways(self, key: str) -> int:
        """End every connection of the gateway credentials ``key`` (``GatewayIdentity.key``):
        they were revoked. Their devices go offline with reason ``revoked``.

        Returns:
            How many connections were ended.
        """
        if self._core is None:
            return 0
        return await self._core.disconnect_gateways(key)

    async def recheck_gateways(self, device_id: int | None = None, key: str | None = None) -> None:
        """Ask every connected gateway's scope again after a change (of one device, or of
        anything: credentials, organizations, templates). Gateways whose credentials stopped
        working are disconnected (presence reason ``revoked``); devices that left a gateway's
        scope are dropped from it. With ``device_id``, only that device is checked, and the
        credentials only of the gateways logged in as ``key``."""
        if self._core is not None:
            await self._core.recheck_gateways(device_id, key)

    def connected_devices(self) -> set[int]:
        """Ids of the devices online, directly or through a gateway (for tests and diagnostics)."""
        if self._core is None:
            return set()
        core = self._core
        direct = {c.identity.device_id for c in core.connections.values() if isinstance(c.identity, DeviceIdentity)}
        return direct | {device_id for device_id, c in core.gateway_links.items() if not c.closed}

    def gateway_sessions(self) -> list[GatewaySession]:
        """The gateways connected now: key, client id, address and traffic (diagnostics)."""
        if self._core is None:
            return []
        sessions = []
        for connection in self._core.connections.values():
            state = connection.session.gateway
            if state is None or connection.closed:
                continue
            sessions.append(
                GatewaySession(
                    key=state.identity.key,
                    client_id=connection.session.client_sent_id,
                    address=connection.address,
                    port=connection.port,
                    devices_online=sum(1 for d in state.devices.values() if d.online),
                    traffic=connection.writer.meter.snapshot(),
                )
            )
        return sessions

    def bridge_sessions(self) -> list[BridgeSession]:
        """The gateway and integration connections live now, oldest first: who, since when, from
        where, devices, subscriptions and traffic (the console's list of MQTT sessions)."""
        if self._core is None:
            return []
        core = self._core
        return bridge_sessions(core.connections, lambda s: core.index.count(s) + core.shared.count(s))

    async def disconnect_bridge(self, session_id: str) -> bool:
        """End the gateway or integration connection :meth:`bridge_sessions` calls ``session_id``
        ("disconnect now": its gateway devices go offline with reason ``kicked``, its persistent
        session and credentials stay). Whether it was connected."""
        connection = find_bridge(self._core.connections, session_id) if self._core is not None else None
        if connection is None or self._core is None:
            return False
        await self._core.end_connection(connection, OfflineReason.KICKED)
        return True

    def open_connections(self) -> int:
        """Client sockets being served right now, authenticated or not (for tests and diagnostics)."""
        return self._core.served if self._core is not None else 0

    def session_queues(self) -> dict[str, SessionQueues]:
        """Queue sizes of every session, keyed ``dev:<device_id>`` or ``svc:<client id>``.

        For tests and diagnostics: shows that what waits for a client stays bounded.
        """
        if self._core is None:
            return {}
        result: dict[str, SessionQueues] = {}
        for key, (session, _) in list(self._core._sessions.items()):
            connection = session.connection if isinstance(session, BrokerSession) else None
            live = connection is not None and not connection.closed
            backlog = session.backlog if isinstance(session, BrokerSession) else ()
            backlog_dropped = session.backlog_dropped if isinstance(session, BrokerSession) else 0
            result[key] = SessionQueues(
                outgoing=len(connection.outbox) if connection is not None and live else 0,
                inflight=len(session.inflight_out),
                incoming=session.delivered_message_queue.qsize(),
                backlog=len(backlog),
                dropped=(connection.outbox.dropped if connection is not None and live else 0) + backlog_dropped,
            )
        return result
