"""The device-side services the MQTT ingest and the HTTP device API share, built once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from backend.devices.commands import DeviceCommands
from backend.devices.data import DataService
from backend.devices.lifecycle import Lifecycle
from backend.devices.meta import MetaService
from backend.devices.properties import PropertyService
from backend.devices.timeline import EventLimiter, Timeline
from backend.settings import Settings


@dataclass
class DeviceServices:
    """Values, metadata, properties, timeline, lifecycle and commands of devices."""

    data: DataService
    meta: MetaService
    properties: PropertyService
    timeline: Timeline
    lifecycle: Lifecycle
    commands: DeviceCommands
    timestamped_max_age: timedelta = timedelta(days=30)

    @classmethod
    def build(cls, pool: AsyncConnectionPool, data: DataService, settings: Settings) -> DeviceServices:
        """Wire the services from the settings (nothing starts yet: see :meth:`start`); the
        timeline tells ``data.signals`` of events and connections."""
        timeline = Timeline(
            pool, EventLimiter(settings.events_per_day, settings.event_min_interval_seconds), data.signals
        )
        return cls(
            data=data,
            meta=MetaService(pool, data.publisher, settings.string_max_bytes),
            properties=PropertyService(pool, data.live),
            timeline=timeline,
            lifecycle=Lifecycle(pool, timeline, flush_seconds=settings.last_seen_flush_seconds, live=data.live),
            commands=DeviceCommands(data.publisher),
            timestamped_max_age=timedelta(days=settings.timestamped_max_age_days),
        )

    def start(self) -> None:
        """Start the background parts (lifecycle sweeper and last-seen flusher)."""
        self.lifecycle.start()

    async def stop(self) -> None:
        """Stop them and write what is pending."""
        await self.lifecycle.stop()
