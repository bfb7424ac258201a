"""Chart buckets hold exactly the stored points of their range (issue #20).

Hypothesis draws point sets, ranges (aligned to nothing, or to minutes or hours) and bucket
counts; the series read from raw points, minute and hour rollups and packed days must equal a
brute-force aggregation of the same points, bucket by bucket: the same counts, min and max,
and the same average (integer values keep every sum exact, so no tolerance is needed).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backend.db.engine import Database
from backend.db.migrate import migrate
from backend.history import timescale
from backend.history.packing import pack_closed_days
from backend.history.partitions import ensure_partitions
from backend.history.queries import MAX_POINTS, MINUTE, Grid, Series, series
from backend.history.writer import HistoryRow, HistoryWriter
from tests.support.timescaledb import insert_history, timescale_database

DAY_US = 86_400_000_000
MICROSECOND = timedelta(microseconds=1)
BASE = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
"""Midnight three days ago: points fall on two days that get packed, yesterday and today."""
DEVICES = itertools.count(1)
Store = Callable[[Database, list[HistoryRow]], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    points: list[tuple[datetime, float | None]]
    start: datetime
    end: datetime
    buckets: int
    save_raw: bool


def instant(near: int) -> st.SearchStrategy[int]:
    """Microseconds after BASE: anywhere in four days, on a whole minute or hour, or close to
    ``near`` (so that points crowd the range's edges)."""
    return st.one_of(
        st.integers(0, 4 * DAY_US - 1),
        st.integers(0, 4 * 1440 - 1).map(lambda m: m * 60_000_000),
        st.integers(0, 4 * 24 - 1).map(lambda h: h * 3_600_000_000),
        st.integers(-7_200_000_000, 7_200_000_000).map(lambda d: min(max(near + d, 0), 4 * DAY_US - 1)),
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    a, b = draw(instant(DAY_US)), draw(instant(2 * DAY_US))
    if a == b:
        b = a + 1
    lo, hi = sorted((a, b))
    values = st.one_of(st.integers(-1000, 1000).map(float), st.none())  # None: a text point
    stamps = st.one_of(instant(lo), instant(hi), st.integers(lo, hi))
    size = draw(st.integers(0, 60))
    points = draw(st.lists(st.tuples(stamps, values), min_size=size, max_size=size))
    at = [(BASE + timedelta(microseconds=us), value) for us, value in points]
    # a bucket count of its own, or one that makes buckets raw, minutes, hours on the minute grid
    # or whole hours wide
    width = st.sampled_from([(1, 60), (60, 3600), (3600, 4 * 3600), (4 * 3600, 12 * 3600)]).flatmap(
        lambda seconds: st.integers(seconds[0] * 1_000_000, seconds[1] * 1_000_000)
    )
    by_width = width.map(lambda us: min(max((hi - lo) // us, 1), MAX_POINTS))
    buckets = draw(st.one_of(st.integers(1, 2000), by_width, by_width))
    return Case(at, BASE + timedelta(microseconds=lo), BASE + timedelta(microseconds=hi), buckets, draw(st.booleans()))


def expected(case: Case, grid: Grid) -> dict[datetime, tuple[float, float, float, int]]:
    """Brute force: each numeric point of the closed range [start, end] (or, without raw points,
    each point whose minute starts in it) into its bucket of ``grid``, a point at ``end`` into
    the last bucket; min, max, average and count."""
    groups: dict[datetime, list[float]] = {}
    last = grid.anchor + (case.end - grid.anchor - MICROSECOND) // grid.width * grid.width
    for ts, value in case.points:
        at = ts if case.save_raw else BASE + (ts - BASE) // MINUTE * MINUTE
        if value is None or not case.start <= at <= case.end:
            continue
        slot = grid.anchor + (at - grid.anchor) // grid.width * grid.width
        groups.setdefault(max(min(slot, last), case.start), []).append(value)
    return {ts: (min(vs), max(vs), sum(vs) / len(vs), len(vs)) for ts, vs in sorted(groups.items())}


@pytest.fixture
def history(fresh_db: str) -> Iterator[tuple[asyncio.AbstractEventLoop, Database]]:
    """A database with partitions for the days of BASE, and a loop to use it from Hypothesis."""
    loop = asyncio.new_event_loop()
    db = Database(fresh_db)
    loop.run_until_complete(db.__aenter__())
    loop.run_until_complete(ensure_partitions(db.pool, days_back=4, days_ahead=1))
    try:
        yield loop, db
    finally:
        loop.run_until_complete(db.__aexit__(None, None, None))
        loop.close()


def rows_of(device: int, case: Case) -> list[HistoryRow]:
    return [
        HistoryRow(device, 0, ts, value, None if value is not None else "text", raw=case.save_raw)
        for ts, value in case.points
    ]


async def write_and_pack(db: Database, rows: list[HistoryRow]) -> None:
    """The plain PostgreSQL path: the history writer, then packing of the finished days."""
    await HistoryWriter(db.pool).write(rows)
    await pack_closed_days(db.pool, keep_raw_days=1)


async def check(db: Database, case: Case, store: Store = write_and_pack) -> Series:
    device = next(DEVICES)
    await store(db, rows_of(device, case))
    result = await series(db.pool, device, 0, case.start, case.end, case.buckets, save_raw=case.save_raw)
    grid = Grid.plan(case.start, case.end, case.buckets, case.save_raw)
    assert (result.width, result.source) == (grid.width, grid.source)
    assert grid.width * case.buckets >= case.end - grid.anchor > case.start - grid.anchor >= timedelta(0)
    if grid.source != "history":  # inner bucket edges fall on whole minutes
        assert (grid.anchor - BASE) % MINUTE == grid.width % MINUTE == timedelta(0)
    assert len(result.buckets) <= case.buckets
    want = expected(case, grid)
    assert sum(b.count for b in result.buckets) == sum(count for *_, count in want.values())
    got = {b.ts: (b.min, b.max, b.avg, b.count) for b in result.buckets}
    assert got == want
    return result


INNER_EDGES_IN_HOURS = Case(
    [(BASE + timedelta(hours=20 + h, minutes=30), float(h)) for h in range(24)],
    BASE + timedelta(hours=20, minutes=7),
    BASE + timedelta(days=1, hours=20, minutes=7),
    10,
    False,
)
"""A day into 10 buckets of 2 h 24 min: the hours that bucket edges cut come from minutes."""

END = BASE + timedelta(days=1, hours=20)
TO_ON_A_POINT = [
    # raw points every 10 s, ``to`` on the last one and on a bucket edge (10 s buckets)
    Case(
        [(END - timedelta(seconds=10 * i), 1000.0 - i) for i in range(61)], END - timedelta(minutes=10), END, 60, True
    ),
    # raw points every hour on the hour, ``to`` on the last one, whole-hour buckets (4 h)
    Case([(END - timedelta(hours=i), 1000.0 - i) for i in range(25)], END - timedelta(days=1), END, 6, True),
    # minutes only: the minute starting at ``to`` counts whole (its points at and after ``to``), the
    # next one not; ``to`` is a bucket edge on the minute grid (5 min buckets) and on the hour grid
    Case(
        [(END - timedelta(minutes=i), 1000.0 - i) for i in range(61)]
        + [(END + timedelta(seconds=20), 2000.0), (END + timedelta(minutes=1), 3000.0)],
        END - timedelta(hours=1),
        END,
        12,
        False,
    ),
    Case(
        [(END - timedelta(minutes=7 * i), 1000.0 - i) for i in range(206)] + [(END + timedelta(seconds=59), 2000.0)],
        END - timedelta(days=1),
        END,
        6,
        False,
    ),
]
"""Ranges whose ``to`` is a stored point's timestamp: that point is in the closed range."""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
@example(case=INNER_EDGES_IN_HOURS)
@example(case=TO_ON_A_POINT[1])
@example(case=TO_ON_A_POINT[3])
def test_series_equal_a_brute_force_aggregation_of_the_points(
    history: tuple[asyncio.AbstractEventLoop, Database], case: Case
) -> None:
    loop, db = history
    loop.run_until_complete(check(db, case))


@pytest.mark.parametrize("case", TO_ON_A_POINT, ids=["raw", "raw-hours", "minutes", "minutes-hours"])
def test_a_point_at_to_counts_in_the_last_bucket(
    history: tuple[asyncio.AbstractEventLoop, Database], case: Case
) -> None:
    """The range is closed: the point stamped ``to`` is in the last bucket (and, without raw
    points, the rest of the minute starting at ``to``, which holds the largest value), and no
    bucket starts at ``to`` or after it."""
    loop, db = history
    result = loop.run_until_complete(check(db, case))
    in_range = [v for ts, v in case.points if v is not None and case.start <= ts <= case.end]
    rest_of_minute = [v for ts, v in case.points if v is not None and case.end < ts < case.end + MINUTE]
    counted = in_range + ([] if case.save_raw else rest_of_minute)
    assert sum(b.count for b in result.buckets) == len(counted)
    assert len(result.buckets) <= case.buckets and result.buckets[-1].ts < case.end
    assert result.buckets[-1].max == max(counted)


def test_the_edges_of_a_week_of_imported_minutes(history: tuple[asyncio.AbstractEventLoop, Database]) -> None:
    """The reported case: 10,000 points a minute apart, read from 36 minutes past an hour into
    100 buckets; the minutes before the first whole hour used to be left out."""
    loop, db = history
    first = BASE + timedelta(hours=1, minutes=36, seconds=20)
    points: list[tuple[datetime, float | None]] = [(first + timedelta(minutes=i), float(i % 89)) for i in range(10_000)]
    points[3] = (points[3][0], 5000.0)  # the maximum sits before the first whole hour
    for save_raw in (True, False):
        case = Case(points, first, first + timedelta(minutes=10_000), 100, save_raw)
        loop.run_until_complete(check(db, case))


async def insert_and_compress(db: Database, rows: list[HistoryRow]) -> None:
    """The TimescaleDB path: raw rows into the hypertable and both rollups with INSERTs (the
    local build crashes on COPY; one device per example, so rollup rows are new), then the
    chunks older than two days compressed."""
    await insert_history(db.pool, rows)
    async with db.pool.connection() as conn:
        await conn.execute(
            "SELECT count(compress_chunk(c, if_not_compressed => true)) "
            "FROM show_chunks('history', older_than => INTERVAL '2 days') c"
        )


@pytest.fixture
def hypertable() -> Iterator[tuple[asyncio.AbstractEventLoop, Database]]:
    """A migrated database whose history is a TimescaleDB hypertable, and a loop to use it."""
    with timescale_database() as server:
        migrate(server.url)
        assert timescale.adopt(server.url, "require")
        loop = asyncio.new_event_loop()
        db = Database(server.url, pool_size=1)
        loop.run_until_complete(db.__aenter__())
        loop.run_until_complete(ensure_partitions(db.pool, days_back=4, days_ahead=1))
        try:
            yield loop, db
        finally:
            loop.run_until_complete(db.__aexit__(None, None, None))
            loop.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
@example(case=INNER_EDGES_IN_HOURS)
@example(case=TO_ON_A_POINT[1])
@example(case=TO_ON_A_POINT[3])
def test_series_on_timescaledb_equal_a_brute_force_aggregation_of_the_points(
    hypertable: tuple[asyncio.AbstractEventLoop, Database], case: Case
) -> None:
    loop, db = hypertable
    loop.run_until_complete(check(db, case, insert_and_compress))
