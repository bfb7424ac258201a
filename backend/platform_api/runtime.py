"""What the platform API needs from the running app, built once at start-up (``app.state.platform``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from litestar import Litestar
from psycopg_pool import AsyncConnectionPool

from backend.accounts.context import AccountsRuntime
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


def platform_lifespan() -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A lifespan (after the app's, the data API's and the accounts') that builds :class:`PlatformRuntime` and
    drops tokens that ended more than a day ago."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        api = app.state.device_api
        app.state.platform = PlatformRuntime(api.registry, api.secrets, api.services, api.pool,
                                             app.state.data_api.batch)
        accounts: AccountsRuntime = app.state.accounts
        async with accounts.db.session() as session:
            await TokenService(session, timedelta(days=accounts.settings.api_refresh_token_days)).purge_expired()
        yield
    return lifespan
