"""The broker's :class:`broker.Authenticator`, backed by PostgreSQL.

Who may log in to the broker (user name / password):

* ``device`` / a device's token: that device. The token is looked up by its HMAC through the
  cached :class:`DeviceRegistry` (``holder``: the device's id and organization, all a login
  needs); a token no device holds is handed to ``activate`` (static tokens,
  ``backend.inject.activation``), which may make its device now.
* ``openblynk-service`` / a password derived from the secret key: the platform's own clients.
* Blynk's MQTT Gateway API (a :class:`broker.GatewayIdentity`), speaking for the devices of one
  organization and of every organization below it, each under ``dev/<token>/``:

  - an OAuth client's id / its secret (``ClientLogins``: the platform API's clients, with
    the same rules as its token endpoint: not revoked, its maker still lets it work);
  - ``mgmt_device`` / the token of a device whose template has "Enable for Gateway API"
    (the device's organization).

  Gateway keys: ``client:<oauth_client.id>`` and ``device:<device.id>`` (what revocation
  names: :func:`client_gateway_key`, :func:`device_gateway_key`).

* An integration client (a :class:`broker.IntegrationIdentity`, its organization's own MQTT
  namespace): ``integration:<OAuth client id>`` / its secret, for a working client whose
  "may use MQTT" is on. The user name's prefix is what tells it from the same client's gateway
  login. Key ``client:<oauth_client.id>`` as for its gateway logins (revoking ends both).

Anything else is refused (``None``: CONNACK 4, counted toward the per-address login limit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from backend.devices.registry import DeviceRegistry
from backend.security import Secrets
from broker.identity import ConnectInfo, DeviceIdentity, GatewayIdentity, IntegrationIdentity, ServiceIdentity

log = logging.getLogger(__name__)
SERVICE_USERNAME = "openblynk-service"
DEVICE_USERNAME = "device"
GATEWAY_DEVICE_USERNAME = "mgmt_device"
"""Blynk's user name for a gateway logging in with a device token."""
INTEGRATION_PREFIX = "integration:"
"""User name prefix of an integration login: ``integration:<OAuth client id>``."""

_SUBTREE_SQL = """WITH RECURSIVE sub(id) AS (
    SELECT id FROM organization WHERE id = %s
    UNION ALL SELECT o.id FROM organization o JOIN sub s ON o.parent_id = s.id)
SELECT id FROM sub"""
_GATEWAY_DEVICE_SQL = """SELECT d.org_id FROM device d JOIN template t ON t.id = d.template_id
WHERE d.id = %s AND t.gateway_enabled"""


def client_gateway_key(client_pk: int) -> str:
    """The gateway key of an OAuth client (``oauth_client.id``)."""
    return f"client:{client_pk}"


def device_gateway_key(device_id: int) -> str:
    """The gateway key of a ``mgmt_device`` login with this device's token."""
    return f"device:{device_id}"


class ClientLogins(Protocol):
    """OAuth clients as broker logins (the platform API's clients; the process wires them)."""

    async def verify(self, client_id: str, client_secret: str) -> int | None:
        """The id (``oauth_client.id``) of a working client whose secret this is, else None."""
        ...

    async def working_org(self, client_pk: int) -> int | None:
        """The organization of a client that still works (not revoked, maker active), else None."""
        ...

    async def mqtt_org(self, client_pk: int) -> int | None:
        """The organization of a working client whose "may use MQTT" is on, else None."""
        ...


class OrgScope:
    """The devices of one organization and of every organization below it.

    ``device_for`` reads the device through the registry's cache (dropped by change notices);
    the organizations below are read again every ``ttl`` seconds and by ``still_valid``.
    """

    def __init__(self, auth: PgAuthenticator, org_id: int) -> None:
        self.auth = auth
        self.org_id = org_id
        self._orgs: frozenset[int] = frozenset()
        self._orgs_until = 0.0

    async def device_for(self, token: str) -> int | None:
        """The device holding ``token`` if it is in scope."""
        holder = await self.auth.registry.holder(self.auth.secrets.token_hmac(token))
        if holder is None:
            return None
        return holder.id if holder.org_id in await self.orgs() else None

    async def orgs(self) -> frozenset[int]:
        """The organization and every one below it (cached for the registry's time to live)."""
        if time.monotonic() >= self._orgs_until:
            async with self.auth.registry.pool.connection() as conn:
                rows = await (await conn.execute(_SUBTREE_SQL, (self.org_id,))).fetchall()
            self._orgs = frozenset(int(r[0]) for r in rows)
            self._orgs_until = time.monotonic() + self.auth.registry.ttl
        return self._orgs

    def forget(self) -> None:
        """Read the organizations again on the next lookup."""
        self._orgs_until = 0.0


class ClientScope(OrgScope):
    """An OAuth client's gateway scope: its organization's subtree, while the client works."""

    def __init__(self, auth: PgAuthenticator, org_id: int, client_pk: int, clients: ClientLogins) -> None:
        super().__init__(auth, org_id)
        self.client_pk = client_pk
        self.clients = clients

    async def still_valid(self) -> bool:
        """The client still works and still belongs to the same organization."""
        self.forget()
        return await self.clients.working_org(self.client_pk) == self.org_id


class IntegrationScope(ClientScope):
    """An integration login's credentials: valid while the client works and may use MQTT."""

    async def still_valid(self) -> bool:
        """The client still works, may use MQTT and belongs to the same organization."""
        self.forget()
        return await self.clients.mqtt_org(self.client_pk) == self.org_id


class DeviceGatewayScope(OrgScope):
    """A ``mgmt_device`` login's scope: its device's organization subtree, while the device
    exists there and its template keeps "Enable for Gateway API" (a revoked token is
    handled by the broker at once, from the device's change notice)."""

    def __init__(self, auth: PgAuthenticator, org_id: int, device_id: int) -> None:
        super().__init__(auth, org_id)
        self.device_id = device_id

    async def still_valid(self) -> bool:
        """The device is still in the same organization and its template still allows gateways."""
        self.forget()
        return await self.auth.gateway_device_org(self.device_id) == self.org_id


class PgAuthenticator:
    """Credentials → identity, resolved from PostgreSQL with short caches."""

    def __init__(
        self,
        registry: DeviceRegistry,
        secrets: Secrets,
        activate: Callable[[bytes], Awaitable[int | None]] | None = None,
        *,
        clients: ClientLogins | None = None,
    ) -> None:
        self.registry = registry
        self.secrets = secrets
        self.activate = activate
        """Token HMAC -> the id of the device made for it now (static tokens), or None."""
        self.clients = clients

    async def authenticate(
        self, info: ConnectInfo
    ) -> DeviceIdentity | ServiceIdentity | GatewayIdentity | IntegrationIdentity | None:
        """Who is connecting, or None to refuse with CONNACK 4."""
        if info.username == SERVICE_USERNAME:
            if self.secrets.check_service_password(info.password):
                return ServiceIdentity(name=info.client_id or SERVICE_USERNAME)
            log.warning("refused service login from %s: wrong password", info.remote_address)
            return None
        if not info.username or not info.password:
            return None
        if info.username == DEVICE_USERNAME:
            return await self._device(info.password, info.remote_address)
        if info.username == GATEWAY_DEVICE_USERNAME:
            return await self._device_gateway(info.password, info.remote_address)
        if info.username.startswith(INTEGRATION_PREFIX):
            return await self._integration(info.username[len(INTEGRATION_PREFIX) :], info.password, info.remote_address)
        return await self._client_gateway(info.username, info.password, info.remote_address)

    async def _device(self, token: str, address: str | None) -> DeviceIdentity | None:
        token_hmac = self.secrets.token_hmac(token)
        holder = await self.registry.holder(token_hmac)
        if holder is not None:
            return DeviceIdentity(device_id=holder.id)
        made = await self.activate(token_hmac) if self.activate is not None else None
        if made is None:
            log.info("refused device login from %s: unknown token", address)
            return None
        return DeviceIdentity(device_id=made)

    async def _device_gateway(self, token: str, address: str | None) -> GatewayIdentity | None:
        holder = await self.registry.holder(self.secrets.token_hmac(token))
        org = await self.gateway_device_org(holder.id) if holder is not None else None
        if holder is None or org is None:
            log.info("refused mgmt_device login from %s: unknown token or gateway API not enabled", address)
            return None
        return GatewayIdentity(device_gateway_key(holder.id), DeviceGatewayScope(self, org, holder.id))

    async def _client_gateway(self, client_id: str, secret: str, address: str | None) -> GatewayIdentity | None:
        client_pk = await self.clients.verify(client_id, secret) if self.clients is not None else None
        org = await self.clients.working_org(client_pk) if self.clients is not None and client_pk else None
        if self.clients is None or client_pk is None or org is None:
            log.info("refused login from %s: not a device, service or working OAuth client", address)
            return None
        return GatewayIdentity(client_gateway_key(client_pk), ClientScope(self, org, client_pk, self.clients))

    async def _integration(self, client_id: str, secret: str, address: str | None) -> IntegrationIdentity | None:
        client_pk = await self.clients.verify(client_id, secret) if self.clients is not None else None
        org = await self.clients.mqtt_org(client_pk) if self.clients is not None and client_pk else None
        if self.clients is None or client_pk is None or org is None:
            log.info("refused integration login from %s: no working OAuth client that may use MQTT", address)
            return None
        scope = IntegrationScope(self, org, client_pk, self.clients)
        return IntegrationIdentity(client_gateway_key(client_pk), org, scope)

    async def gateway_device_org(self, device_id: int) -> int | None:
        """The organization of a device whose template has "Enable for Gateway API", else None."""
        async with self.registry.pool.connection() as conn:
            row = await (await conn.execute(_GATEWAY_DEVICE_SQL, (device_id,))).fetchone()
        return int(row[0]) if row is not None else None
