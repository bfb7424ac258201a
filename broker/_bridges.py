"""The connected gateway and integration sessions, for the console's list (issue #14 item 7).

:func:`bridge_sessions` reads the broker's own tables in the event loop (never from another
thread) and answers one :class:`BridgeSession` per live gateway (Blynk's MQTT Gateway API) or
integration connection: who (the credentials' key, the organization of an integration), since
when, from which address, how many devices and subscriptions, and its traffic. Each has an
opaque ``id`` naming that one connection (a reconnect of the same client gets another), which
:func:`find_bridge` turns back into the connection to end ("disconnect now").

The list carries no name the broker does not know: the app resolves each ``key`` to its OAuth
client or device, and so to its organization, and shows each organization only its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from broker._session import BrokerSession, Connection
from broker.identity import GatewayIdentity, IntegrationIdentity

__all__ = ["BridgeSession", "bridge_sessions", "find_bridge"]


@dataclass(frozen=True, slots=True)
class BridgeSession:
    """One connected gateway or integration client (see :func:`bridge_sessions`)."""

    id: str
    """Opaque, names this connection only (:meth:`broker.MqttBroker.disconnect_bridge`)."""
    kind: Literal["gateway", "integration"]
    key: str
    """The credentials: ``client:<oauth client pk>`` or ``device:<device pk>`` (``mgmt_device``)."""
    org_id: int | None
    """An integration client's organization (a gateway's is the app's to resolve from ``key``)."""
    client_id: str
    address: str | None
    port: int | None
    connected_at: float
    """When the connection was accepted (Unix seconds)."""
    devices: int
    """Devices online through this gateway (0 for an integration client)."""
    subscriptions: int
    msgs_in: int
    msgs_out: int
    bytes_in: int
    bytes_out: int


def _session_id(connection: Connection) -> str:
    seed = f"{connection.key}\x00{connection.writer.meter.started!r}".encode()
    return hashlib.sha256(seed).hexdigest()[:24]


def _bridges(connections: dict[str, Connection]) -> list[Connection]:
    return [
        c
        for c in list(connections.values())
        if not c.closed and isinstance(c.identity, GatewayIdentity | IntegrationIdentity)
    ]


def bridge_sessions(
    connections: dict[str, Connection], subscriptions: Callable[[BrokerSession], int]
) -> list[BridgeSession]:
    """Every live gateway and integration connection, oldest first (``subscriptions``: how many
    filters a session holds, shared ones included)."""
    now_loop, now_wall = asyncio.get_running_loop().time(), time.time()
    found = []
    for connection in _bridges(connections):
        identity = connection.identity
        assert isinstance(identity, GatewayIdentity | IntegrationIdentity)
        state = connection.session.gateway
        meter = connection.writer.meter
        found.append(
            BridgeSession(
                id=_session_id(connection),
                kind="integration" if isinstance(identity, IntegrationIdentity) else "gateway",
                key=identity.key,
                org_id=identity.org_id if isinstance(identity, IntegrationIdentity) else None,
                client_id=connection.session.client_sent_id,
                address=connection.address,
                port=connection.port,
                connected_at=now_wall - (now_loop - meter.started),
                devices=sum(1 for d in state.devices.values() if d.online) if state is not None else 0,
                subscriptions=subscriptions(connection.session),
                msgs_in=meter.msgs_in,
                msgs_out=meter.msgs_out,
                bytes_in=meter.bytes_in,
                bytes_out=meter.bytes_out,
            )
        )
    return sorted(found, key=lambda s: s.connected_at)


def find_bridge(connections: dict[str, Connection], session_id: str) -> Connection | None:
    """The live gateway or integration connection :func:`bridge_sessions` calls ``session_id``."""
    return next((c for c in _bridges(connections) if _session_id(c) == session_id), None)
