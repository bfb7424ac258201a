"""What the console needs from the running app, built once at start-up (the ``console_runtime``
dependency)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from backend.console.images import ImageLimits
from backend.devices.context import DeviceServices
from backend.devices.live import LiveFeed
from backend.devices.registry import DeviceRegistry
from backend.security import Secrets


@dataclass(frozen=True)
class ConsoleRuntime:
    """The device registry, token secrets, device services, history pool and live feed, and the
    image library's limits."""

    registry: DeviceRegistry
    secrets: Secrets
    devices: DeviceServices
    pool: AsyncConnectionPool
    images: ImageLimits = ImageLimits()

    @property
    def live(self) -> LiveFeed:
        """The feed the write paths publish to."""
        return self.devices.data.live
