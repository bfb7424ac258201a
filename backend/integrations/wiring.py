"""The integration side of one app process: the device feed and the writes (built by the
runtime container, started and stopped by the lifespan)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.db.engine import Database
from backend.integrations.feed import DeviceFeed
from backend.integrations.writes import WRITE_SUBSCRIPTION, IntegrationWrites
from backend.platform_api.runtime import PlatformRuntime
from backend.transport.mqtt import ServiceClient


@dataclass(frozen=True)
class IntegrationRuntime:
    """The device feed (published through the app's own broker connection) and the writes
    (their own connection, ``<app client id>-integrations``, one shared subscription)."""

    feed: DeviceFeed
    writes: IntegrationWrites

    @classmethod
    def build(
        cls, db: Database, feed: DeviceFeed, platform: PlatformRuntime, connection: tuple[str, int, str, str, str]
    ) -> IntegrationRuntime:
        """``connection``: broker host, port, service user name, password, the app's client id."""
        host, port, username, password, client_id = connection
        client = ServiceClient(
            host, port, username, password, f"{client_id}-integrations", [WRITE_SUBSCRIPTION], clean_session=True
        )
        return cls(feed, IntegrationWrites(db, platform, client))

    async def start(self) -> None:
        """Read the fed devices, then take writes."""
        await self.feed.load()
        await self.writes.start()

    async def stop(self) -> None:
        """Stop taking writes and reloading."""
        await self.writes.stop()
        await self.feed.stop()
