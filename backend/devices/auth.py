"""The broker's :class:`broker.Authenticator`, backed by PostgreSQL.

Devices authenticate with username ``device`` and their token as password; the token is
looked up by its HMAC through the cached :class:`DeviceRegistry`. The platform's own clients
use username ``openblynk-service`` and a password derived from the secret key.
"""

from __future__ import annotations

import logging

from backend.devices.registry import DeviceRegistry
from backend.security import Secrets
from broker.identity import ConnectInfo, DeviceIdentity, ServiceIdentity

log = logging.getLogger(__name__)
SERVICE_USERNAME = "openblynk-service"
DEVICE_USERNAME = "device"


class PgAuthenticator:
    """Token → device identity, resolved from PostgreSQL with a short cache."""

    def __init__(self, registry: DeviceRegistry, secrets: Secrets) -> None:
        self.registry = registry
        self.secrets = secrets

    async def authenticate(self, info: ConnectInfo) -> DeviceIdentity | ServiceIdentity | None:
        """Who is connecting, or None to refuse with CONNACK 4."""
        if info.username == SERVICE_USERNAME:
            if self.secrets.check_service_password(info.password):
                return ServiceIdentity(name=info.client_id or SERVICE_USERNAME)
            log.warning("refused service login from %s: wrong password", info.remote_address)
            return None
        if info.username != DEVICE_USERNAME or not info.password:
            return None
        device = await self.registry.by_token_hmac(self.secrets.token_hmac(info.password))
        if device is None:
            log.info("refused device login from %s: unknown token", info.remote_address)
            return None
        return DeviceIdentity(device_id=device.id)
