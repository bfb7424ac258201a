"""What the platform API needs from the running app, built once at start-up (the
``platform_runtime`` dependency)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from backend.accounts.runtime import AccountsRuntime
from backend.device_api.batch import BatchImportService
from backend.devices.context import DeviceServices
from backend.devices.registry import DeviceRegistry
from backend.platform_api.oauth import TokenService
from backend.security import Secrets


@dataclass(frozen=True)
class PlatformRuntime:
    """The device registry, token secrets, device services, the history pool and the device
    API's timestamped import (``/device/import/batch`` takes the same path)."""

    registry: DeviceRegistry
    secrets: Secrets
    devices: DeviceServices
    pool: AsyncConnectionPool
    batch: BatchImportService


async def purge_ended_tokens(accounts: AccountsRuntime) -> None:
    """Drop the API tokens that ended more than a day ago (at start-up)."""
    async with accounts.db.session() as session:
        await TokenService(session, timedelta(days=accounts.settings.api_refresh_token_days)).purge_expired()
