"""Who a connected MQTT client is, and how the broker learns it.

The broker never reads the database. It asks an :class:`Authenticator` (implemented by the
backend, resolved from PostgreSQL with a cache) to turn CONNECT credentials into an identity:

* :class:`DeviceIdentity` -- a Blynk device. Its session is mounted at ``d/<device_id>/`` and
  it may only publish Blynk uplink topics and subscribe under ``downlink/``.
* :class:`ServiceIdentity` -- a trusted platform component (the backend's ingest client, a
  bridge). Not mounted; may publish and subscribe anywhere.
* :class:`GatewayIdentity` -- Blynk's MQTT Gateway API: a client speaking for many devices,
  each under ``dev/<device token>/``; its :class:`GatewayScope` says which tokens it may use.
* :class:`IntegrationIdentity` -- an organization's integration client: its own namespace
  (:mod:`broker.namespace`).

``None`` means "refused": the client gets CONNACK 4 (bad user name or password), as Blynk does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """A device authenticated by its 32-character auth token."""

    device_id: int

    def __post_init__(self) -> None:
        if self.device_id <= 0:
            raise ValueError(f"device_id must be positive, got {self.device_id}")

    @property
    def mount(self) -> str:
        """The topic prefix every topic of this device lives under, e.g. ``d/42/``."""
        return f"d/{self.device_id}/"


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    """A trusted platform client, such as the backend's ingest connection."""

    name: str


class GatewayScope(Protocol):
    """Which devices a gateway may speak for (implemented by the backend, cached there)."""

    async def device_for(self, token: str) -> int | None:
        """The id of the device holding ``token`` if it is in this gateway's scope, else ``None``."""
        ...

    async def still_valid(self) -> bool:
        """Whether the gateway's credentials still work (not revoked, not disabled)."""
        ...


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """A gateway (Blynk's MQTT Gateway API): an OAuth client, or ``mgmt_device`` with the token
    of a device whose template has "Enable for Gateway API".

    ``key`` names the credentials (``client:<id>``, ``device:<id>``): revoking them ends every
    connection with that key (:meth:`broker.MqttBroker.disconnect_gateways`).
    """

    key: str
    scope: GatewayScope = field(compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.key or any(c in self.key for c in "+#/\x00"):
            raise ValueError(f"bad gateway key {self.key!r}")


@dataclass(frozen=True, slots=True)
class IntegrationIdentity:
    """An integration client (an OAuth client that "may use MQTT"): a whole MQTT 3.1.1 broker
    inside its organization's namespace (:mod:`broker.namespace`), isolated from every other.

    ``key`` names the credentials like a gateway's (``client:<id>``): revoking them ends its
    connections too (:meth:`broker.MqttBroker.disconnect_gateways`); ``scope.still_valid`` is
    asked again by :meth:`broker.MqttBroker.recheck_gateways`.
    """

    key: str
    org_id: int
    scope: GatewayScope = field(compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.key or any(c in self.key for c in "+#/\x00"):
            raise ValueError(f"bad integration key {self.key!r}")
        if self.org_id <= 0:
            raise ValueError(f"org_id must be positive, got {self.org_id}")


Identity = DeviceIdentity | ServiceIdentity | GatewayIdentity | IntegrationIdentity


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What the broker knows of a client when it asks who the client is."""

    username: str | None
    password: str | None
    client_id: str
    remote_address: str | None


@runtime_checkable
class Authenticator(Protocol):
    """Resolves CONNECT credentials to an identity; ``None`` refuses the connection."""

    async def authenticate(self, info: ConnectInfo) -> Identity | None:
        """Return the client's identity, or ``None`` to refuse it with CONNACK 4."""
        ...
