"""Blynk's event limits: 100 a day per device, one per second per code (both configurable)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.devices.timeline import EventLimiter, EventRefusedError

T0 = datetime(2026, 11, 26, 23, 59, 0, tzinfo=UTC)


def test_one_event_per_interval_per_code() -> None:
    limiter = EventLimiter(per_day=100, min_interval=1.0)
    limiter.take(1, "overheat", T0)
    limiter.take(1, "door", T0)  # another code: allowed
    limiter.take(2, "overheat", T0)  # another device: allowed
    with pytest.raises(EventRefusedError, match="at most one event every 1 s per code"):
        limiter.take(1, "overheat", T0 + timedelta(milliseconds=999))
    limiter.take(1, "overheat", T0 + timedelta(seconds=1))


def test_daily_limit_counts_from_the_seed_and_resets_at_midnight_utc() -> None:
    limiter = EventLimiter(per_day=3, min_interval=0)
    assert not limiter.knows(1, T0.date())
    limiter.seed(1, T0.date(), 2)  # two already stored today
    assert limiter.knows(1, T0.date())
    limiter.take(1, "a", T0)
    with pytest.raises(EventRefusedError, match="limit of 3 events a day reached"):
        limiter.take(1, "b", T0 + timedelta(seconds=5))
    limiter.take(1, "b", T0 + timedelta(minutes=1))  # 00:00 the next day


def test_a_refused_event_does_not_count() -> None:
    limiter = EventLimiter(per_day=2, min_interval=10)
    limiter.take(1, "a", T0)
    with pytest.raises(EventRefusedError):
        limiter.take(1, "a", T0 + timedelta(seconds=1))
    limiter.take(1, "b", T0 + timedelta(seconds=1))
