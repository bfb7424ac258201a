"""The device timeline: logged events (``event/<code>``, HTTP ``logEvent``) and online/offline.

Events are limited as on blynk.cloud (reference §1.8, §3.5): at most ``events_per_day`` per
device per UTC day and one per ``event_min_interval_seconds`` per code. The day's count starts
from what the database already holds, so a restart does not reset it.

Online/offline entries follow the template's "Offline Ignore Period": an offline followed by
an online within ``offline_ignore_seconds`` leaves no entry at all. The offline entry is
written at once and removed when the device comes back in time, so nothing is lost if the
app restarts in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from backend.devices.registry import DeviceInfo, EventSpec
from backend.devices.signals import DeviceEventSignal, DeviceSignals, PresenceSignal
from backend.errors import ValidationError

MAX_DESCRIPTION = 300


class UnknownEventError(ValidationError):
    """The template has no event with that code."""


class EventRefusedError(ValidationError):
    """An event over the per-day or per-code rate limit."""


@dataclass
class EventLimiter:
    """Blynk's event limits, per process (pure: the caller passes the time)."""

    per_day: int = 100
    min_interval: float = 1.0

    def __post_init__(self) -> None:
        self._days: dict[int, tuple[date, int]] = {}
        self._last: dict[tuple[int, str], datetime] = {}

    def knows(self, device_id: int, day: date) -> bool:
        """True when the device's count for ``day`` is known (else :meth:`seed` it first)."""
        entry = self._days.get(device_id)
        return entry is not None and entry[0] == day

    def seed(self, device_id: int, day: date, count: int) -> None:
        """Start the device's count for ``day`` at ``count`` (events already stored)."""
        self._days[device_id] = (day, count)

    def take(self, device_id: int, code: str, now: datetime) -> None:
        """Count one event at ``now``; raises EventRefusedError over a limit."""
        day = now.astimezone(UTC).date()
        seen_day, count = self._days.get(device_id, (day, 0))
        if seen_day != day:
            count = 0
        if count >= self.per_day:
            raise EventRefusedError(f"limit of {self.per_day} events a day reached")
        last = self._last.get((device_id, code))
        if last is not None and now - last < timedelta(seconds=self.min_interval):
            raise EventRefusedError(f"at most one event every {self.min_interval:g} s per code")
        self._last[(device_id, code)] = now
        self._days[device_id] = (day, count + 1)


class Timeline:
    """Writes timeline entries."""

    def __init__(self, pool: AsyncConnectionPool, limiter: EventLimiter, signals: DeviceSignals | None = None) -> None:
        self.pool = pool
        self.limiter = limiter
        self.signals = signals or DeviceSignals()

    def event_spec(self, device: DeviceInfo, code: str) -> EventSpec:
        """The event definition with ``code``; raises UnknownEventError."""
        spec = device.events.get(code)
        if spec is None:
            raise UnknownEventError(f"no event with code {code[:50]!r} in template {device.template_name!r}")
        return spec

    async def log_event(self, device: DeviceInfo, code: str, description: str = "", at: datetime | None = None) -> None:
        """Store an event; an empty description is the definition's. Raises on unknown code or limits."""
        spec = self.event_spec(device, code)
        at = at or datetime.now(UTC)
        day = at.date()
        if not self.limiter.knows(device.id, day):
            self.limiter.seed(device.id, day, await self._count_day(device.id, day))
        self.limiter.take(device.id, code, at)
        text = (description or spec.description)[:MAX_DESCRIPTION]
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO device_event (device_id, ts, kind, code, type, description) "
                "VALUES (%s, %s, 'event', %s, %s, %s)",
                (device.id, at, spec.code, spec.type, text),
            )
        self.signals.event(
            DeviceEventSignal(
                device.id, device.org_id, device.template_id, device.name, spec.code, spec.name, spec.type, text, at
            )
        )

    async def connection(self, device_id: int, online: bool, at: datetime, ignore_seconds: int = 0) -> None:
        """Record the device going online or offline (honouring the offline ignore period on the
        timeline; the listeners of :class:`~backend.devices.signals.DeviceSignals` hear every
        transition)."""
        self.signals.presence(PresenceSignal(device_id, online, at))
        async with self.pool.connection() as conn:
            if online and ignore_seconds > 0:
                cur = await conn.execute(_FORGET_BLIP_SQL, (device_id, at - timedelta(seconds=ignore_seconds)))
                if await cur.fetchone() is not None:
                    return  # the offline was a blip: neither it nor this online is shown
            await conn.execute(
                "INSERT INTO device_event (device_id, ts, kind) VALUES (%s, %s, %s)",
                (device_id, at, "online" if online else "offline"),
            )

    async def _count_day(self, device_id: int, day: date) -> int:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM device_event WHERE device_id = %s AND kind = 'event' AND ts >= %s AND ts < %s",
                    (device_id, start, start + timedelta(days=1)),
                )
            ).fetchone()
        return int(row[0]) if row else 0


_FORGET_BLIP_SQL = """
DELETE FROM device_event WHERE id = (
    SELECT id FROM device_event WHERE device_id = %s AND kind IN ('online', 'offline')
    ORDER BY ts DESC, id DESC LIMIT 1)
AND kind = 'offline' AND ts >= %s
RETURNING id
"""
