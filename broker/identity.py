"""Who a connected MQTT client is, and how the broker learns it.

The broker never reads the database. It asks an :class:`Authenticator` (implemented by the
backend, resolved from PostgreSQL with a cache) to turn CONNECT credentials into an identity:

* :class:`DeviceIdentity` -- a Blynk device. Its session is mounted at ``d/<device_id>/`` and
  it may only publish Blynk uplink topics and subscribe under ``downlink/``.
* :class:`ServiceIdentity` -- a trusted platform component (the backend's ingest client, a
  bridge). Not mounted; may publish and subscribe anywhere.

``None`` means "refused": the client gets CONNACK 4 (bad user name or password), as Blynk does.
"""

from __future__ import annotations

from dataclasses import dataclass
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


Identity = DeviceIdentity | ServiceIdentity


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
