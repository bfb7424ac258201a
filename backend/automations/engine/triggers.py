"""When time-based conditions fire: pure functions of a condition and a moment (the clock).

Each time-based condition becomes an APScheduler trigger (:func:`trigger_for`), stored with its
job in PostgreSQL by ``backend.scheduler``; APScheduler asks it ``get_next_fire_time(previous,
now)``, so the clock is whatever ``now`` the caller passes (tests pass their own).

- ``schedule``: :class:`DailyTrigger`, a time of day on some weekdays in an IANA zone. One run
  per local day, DST-correct: on the spring-forward day a time inside the gap (02:30 in
  Europe/Berlin on the last Sunday of March) runs at the same instant a clock moved forward shows
  (03:30), and on the fall-back day a time that occurs twice runs at its first occurrence only.
- ``sun``: :class:`SunTrigger`, sunrise or sunset at ``lat``/``lon`` (``astral``) plus an offset,
  on some weekdays of the local date; days without that event (polar day or night) are skipped.
- ``interval``: APScheduler's ``IntervalTrigger``, anchored at the automation's last change so
  its ``repr`` (which decides whether a stored job is kept) does not move.
- ``once``: APScheduler's ``DateTrigger``; a naive date-time is read in the automation's zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from astral import Observer
from astral.sun import sunrise, sunset

from backend.automations.schemas import Condition, Interval, Once, Schedule, Sun
from backend.devices.timezones import zone_for

_TICK = timedelta(microseconds=1)
SEARCH_DAYS = 400
"""How many local days a trigger looks ahead for its next run (covers a polar night)."""


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The zone called ``name``, else ``fallback``'s, else UTC."""
    return zone_for(name) or zone_for(fallback) or ZoneInfo("UTC")


def _start(previous: datetime | None, now: datetime) -> datetime:
    """The earliest moment a next run may be at (APScheduler's rule: after the previous run, or
    now, whichever is earlier, so runs missed in between are seen)."""
    return now if previous is None else min(now, previous + _TICK)


def hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """``at`` on ``day`` in ``tz`` as a UTC instant (a time in a DST gap reads with the offset
    before the change, i.e. as a clock moved forward shows it; a repeated time: its first)."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def next_daily(at: time, days: Sequence[int], tz: ZoneInfo, after: datetime) -> datetime:
    """The first ``at`` (local, on one of ``days``, Monday = 0; none = every day) at or after
    ``after``."""
    day = after.astimezone(tz).date() - timedelta(days=1)
    while True:
        if not days or day.weekday() in days:
            candidate = local_instant(day, at, tz)
            if candidate >= after:
                return candidate
        day += timedelta(days=1)


def sun_time(event: str, lat: float, lon: float, day: date, tz: ZoneInfo) -> datetime | None:
    """Sunrise or sunset at a place on a local date (UTC), or None on a day without it."""
    observer = Observer(latitude=lat, longitude=lon)
    try:
        found = (sunrise if event == "sunrise" else sunset)(observer, date=day, tzinfo=tz)
    except ValueError:  # the sun does not rise or set that day
        return None
    return found.astimezone(UTC)


def next_sun(
    event: str, lat: float, lon: float, offset: timedelta, days: Sequence[int], tz: ZoneInfo, after: datetime
) -> datetime | None:
    """The first sunrise/sunset plus ``offset`` at or after ``after`` on one of ``days``."""
    day = after.astimezone(tz).date() - timedelta(days=1)
    for _ in range(SEARCH_DAYS):
        if not days or day.weekday() in days:
            found = sun_time(event, lat, lon, day, tz)
            if found is not None and found + offset >= after:
                return found + offset
        day += timedelta(days=1)
    return None


class DailyTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 has no annotations
    """A time of day on some weekdays, in a zone (see the module's docstring)."""

    def __init__(self, at: str, days: Sequence[int], tz: str) -> None:
        self.at = at
        self.days = tuple(sorted(set(days)))
        self.tz = tz

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        return next_daily(hhmm(self.at), self.days, zone(self.tz), _start(previous_fire_time, now))

    def __repr__(self) -> str:
        return f"<DailyTrigger at={self.at} days={list(self.days)} tz={self.tz}>"


class SunTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 has no annotations
    """Sunrise or sunset plus an offset at a place, on some weekdays (see the module's docstring)."""

    def __init__(self, event: str, lat: float, lon: float, offset_minutes: int, days: Sequence[int], tz: str) -> None:
        self.event = event
        self.lat = lat
        self.lon = lon
        self.offset_minutes = offset_minutes
        self.days = tuple(sorted(set(days)))
        self.tz = tz

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        return next_sun(
            self.event,
            self.lat,
            self.lon,
            timedelta(minutes=self.offset_minutes),
            self.days,
            zone(self.tz),
            _start(previous_fire_time, now),
        )

    def __repr__(self) -> str:
        return (
            f"<SunTrigger {self.event}{self.offset_minutes:+d}min at {self.lat},{self.lon} "
            f"days={list(self.days)} tz={self.tz}>"
        )


def once_at(condition: Once, org_tz: str) -> datetime:
    """A one-off condition's instant (a naive date-time is local to its zone)."""
    at = condition.at
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone(condition.tz, org_tz))
    return at.astimezone(UTC)


def trigger_for(condition: Condition, org_tz: str, anchor: datetime) -> object | None:
    """The APScheduler trigger of a time-based condition (None for the others). ``anchor``: when
    the automation last changed (an interval counts from it)."""
    if isinstance(condition, Schedule):
        return DailyTrigger(condition.at, condition.days, condition.tz or org_tz)
    if isinstance(condition, Sun):
        return SunTrigger(
            condition.event,
            condition.lat,
            condition.lon,
            condition.offset_minutes,
            condition.days,
            condition.tz or org_tz,
        )
    trigger: object | None = None
    if isinstance(condition, Interval):
        start = anchor.astimezone(UTC).replace(microsecond=0)
        trigger = IntervalTrigger(minutes=condition.minutes, start_date=start, timezone=UTC)
    elif isinstance(condition, Once):
        trigger = DateTrigger(run_date=once_at(condition, org_tz), timezone=UTC)
    return trigger
