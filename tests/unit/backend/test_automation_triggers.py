"""When time-based automations fire, computed against a clock the test sets (the ``now`` an
APScheduler trigger is asked with), including DST change days and sunrise/sunset."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from astral import Observer
from astral.sun import sun

from backend.automations.engine.triggers import DailyTrigger, SunTrigger, trigger_for
from backend.automations.schemas import Interval, Once, Schedule, Sun

BERLIN = ZoneInfo("Europe/Berlin")


def fires(trigger: object, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` run times, as APScheduler asks for them (each after the previous)."""
    found: list[datetime] = []
    previous = None
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, now)  # type: ignore[attr-defined]
        assert nxt is not None
        found.append(nxt)
        previous, now = nxt, nxt + timedelta(seconds=1)
    return found


def test_schedule_at_a_time_of_day_on_some_weekdays_in_the_condition_zone() -> None:
    trigger = trigger_for(Schedule(at="07:30", days=[0, 2], tz="Europe/Berlin"), "UTC", datetime.now(UTC))
    now = datetime(2026, 1, 5, 8, 0, tzinfo=BERLIN)  # a Monday, after 07:30
    assert [t.astimezone(BERLIN) for t in fires(trigger, now, 3)] == [
        datetime(2026, 1, 7, 7, 30, tzinfo=BERLIN),  # Wednesday
        datetime(2026, 1, 12, 7, 30, tzinfo=BERLIN),  # Monday
        datetime(2026, 1, 14, 7, 30, tzinfo=BERLIN),
    ]


def test_schedule_without_a_zone_takes_the_organization_zone() -> None:
    trigger = trigger_for(Schedule(at="18:00"), "America/New_York", datetime.now(UTC))
    (first,) = fires(trigger, datetime(2026, 7, 1, 12, 0, tzinfo=UTC), 1)
    assert first == datetime(2026, 7, 1, 22, 0, tzinfo=UTC)  # 18:00 EDT


def test_schedule_on_the_spring_forward_day_runs_once_at_the_moved_clock() -> None:
    """02:30 does not exist in Berlin on 2026-03-29: it runs once, at 03:30 CEST."""
    trigger = DailyTrigger("02:30", [], "Europe/Berlin")
    runs = fires(trigger, datetime(2026, 3, 28, 12, 0, tzinfo=UTC), 3)
    assert runs == [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 03:30 CEST
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
    ]


def test_schedule_on_the_fall_back_day_runs_once_at_the_first_occurrence() -> None:
    """02:30 happens twice in Berlin on 2026-10-25; APScheduler's CronTrigger runs twice, this once."""
    trigger = DailyTrigger("02:30", [], "Europe/Berlin")
    runs = fires(trigger, datetime(2026, 10, 24, 12, 0, tzinfo=UTC), 3)
    assert runs == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first one
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]


def test_schedule_at_noon_keeps_local_time_across_the_change() -> None:
    runs = fires(DailyTrigger("12:00", [], "Europe/Berlin"), datetime(2026, 3, 28, 13, 0, tzinfo=BERLIN), 2)
    assert [r.astimezone(BERLIN).hour for r in runs] == [12, 12]
    assert runs[1] - runs[0] == timedelta(hours=24)  # 29 March noon -> 30 March noon, both CEST
    assert runs[0] - datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN) == timedelta(hours=23)


def test_missed_runs_are_seen_from_the_previous_run() -> None:
    """Asked with the previous run and a later ``now`` (no leader in between), the trigger gives
    the first missed run: APScheduler coalesces and checks the grace time from it."""
    trigger = DailyTrigger("06:00", [], "UTC")
    previous = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    now = datetime(2026, 5, 3, 7, 0, tzinfo=UTC)
    assert trigger.get_next_fire_time(previous, now) == datetime(2026, 5, 2, 6, 0, tzinfo=UTC)


def test_once_is_a_date_trigger_in_the_zone() -> None:
    trigger = trigger_for(Once(at=datetime(2026, 8, 1, 9, 15), tz="Europe/Berlin"), "UTC", datetime.now(UTC))
    assert isinstance(trigger, DateTrigger)
    now = datetime(2026, 7, 1, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == datetime(2026, 8, 1, 7, 15, tzinfo=UTC)
    assert trigger.get_next_fire_time(datetime(2026, 8, 1, 7, 15, tzinfo=UTC), now) is None


def test_interval_counts_from_the_automation_change_and_keeps_its_repr() -> None:
    anchor = datetime(2026, 5, 1, 10, 0, 7, 123, tzinfo=UTC)
    trigger = trigger_for(Interval(minutes=15), "UTC", anchor)
    assert isinstance(trigger, IntervalTrigger)
    assert repr(trigger) == repr(trigger_for(Interval(minutes=15), "UTC", anchor))
    assert fires(trigger, datetime(2026, 5, 1, 10, 20, tzinfo=UTC), 2) == [
        datetime(2026, 5, 1, 10, 30, 7, tzinfo=UTC),
        datetime(2026, 5, 1, 10, 45, 7, tzinfo=UTC),
    ]


def test_sunrise_matches_astral_and_the_published_time_for_london() -> None:
    """London on 2009-04-22 (astral's documented example): sunrise 04:50 UTC, sunset 19:08 UTC."""
    london = Observer(latitude=51.5, longitude=-0.116)
    rise = SunTrigger("sunrise", 51.5, -0.116, 0, [], "Europe/London")
    (first,) = fires(rise, datetime(2009, 4, 22, 0, 0, tzinfo=UTC), 1)
    assert first == sun(london, date=date(2009, 4, 22), tzinfo=ZoneInfo("Europe/London"))["sunrise"]
    assert abs(first - datetime(2009, 4, 22, 4, 50, 16, tzinfo=UTC)) < timedelta(minutes=1)
    set_ = SunTrigger("sunset", 51.5, -0.116, 0, [], "Europe/London")
    (evening,) = fires(set_, datetime(2009, 4, 22, 12, 0, tzinfo=UTC), 1)
    assert abs(evening - datetime(2009, 4, 22, 19, 8, 41, tzinfo=UTC)) < timedelta(minutes=1)


def test_sunset_with_an_offset_on_weekdays_only() -> None:
    trigger = trigger_for(
        Sun(event="sunset", lat=52.52, lon=13.405, offset_minutes=-30, days=[5], tz="Europe/Berlin"),
        "UTC",
        datetime.now(UTC),
    )
    now = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # a Monday
    runs = fires(trigger, now, 2)
    berlin = Observer(latitude=52.52, longitude=13.405)
    for run, day in zip(runs, (date(2026, 6, 6), date(2026, 6, 13)), strict=True):  # Saturdays
        assert run == sun(berlin, date=day, tzinfo=BERLIN)["sunset"] - timedelta(minutes=30)


def test_polar_day_skips_to_the_first_sunset() -> None:
    """Longyearbyen has no sunset from late April to late August: the next one is in August."""
    trigger = SunTrigger("sunset", 78.22, 15.65, 0, [], "Arctic/Longyearbyen")
    (first,) = fires(trigger, datetime(2026, 6, 21, tzinfo=UTC), 1)
    assert first.month == 8
