"""Reading history: at most N buckets for a chart, raw pages, and streamed exports.

A chart asks for a closed range [start, end] and a number of points N. The range is cut into
at most N buckets and each bucket carries min, max, average and count, so a spike shorter than
a bucket still shows. The buckets together hold exactly the stored points of the range, and
each bucket exactly those of its span; a point stamped exactly ``end`` is in the last bucket
(whose span is closed, even where ``end`` falls on the grid's next edge, so there are never more
than N buckets). Timestamps are whole microseconds, so the SQL reads [start, end + 1 µs). The
long middle of a range is still read from rollups:

* buckets under a minute (datastreams with "Save Raw Data") are read from raw points alone;
* otherwise the bucket width is rounded up to whole minutes, or to whole hours once a bucket
  spans :data:`HOUR_ALIGNED` or more (rounding then costs at most a quarter of the buckets),
  and the buckets are laid on the grid of that unit starting at the unit holding ``start``
  (planned over [start, end), so ``end`` on an edge adds no bucket).
  Inner bucket edges then never cut a minute (nor an hour, on the hour grid). Every hour that
  lies wholly inside one bucket and the range is read from ``history_hour``; every other minute
  wholly inside one bucket and the range from ``history_minute``; and the minutes cut by
  ``start`` or ``end`` from raw points. This is how TimescaleDB's real-time aggregates join
  materialized buckets and fresh rows, at both edges of the range instead of one. A year of
  minutes into 1,000 buckets reads about 8,760 hourly rows, 120 minutes and two minutes of
  raw points.

Without raw points (no "Save Raw Data") a minute is the finest thing stored: a minute counts,
whole, where its start lies. A minute starting at ``start`` or at ``end`` is in the range: the
minute starting exactly at ``end`` counts whole, with its points after ``end`` (it holds the
point stamped ``end`` and cannot be split), in the last bucket; a minute starting before
``start`` does not count, even for its points after ``start``.

Raw points are read through the SQL function ``history_points()`` (migration 0008), which
returns the rows of ``history`` and the points of packed segments alike
(:mod:`backend.history.packing`); the queries are plain SQL that the TimescaleDB path
(:mod:`backend.history.timescale`) runs unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from backend.errors import ValidationError

MAX_POINTS = 10_000
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
HOUR_ALIGNED = timedelta(hours=4)
"""Buckets at least this wide are whole hours; narrower ones (from rollups) whole minutes."""
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_BUCKETS_SQL = """
SELECT least(date_bin(%(width)s, t, %(anchor)s), %(last)s) AS b, min(lo), max(hi), sum(total) / sum(n), sum(n)::bigint
FROM ({parts}) AS part (t, lo, hi, total, n) GROUP BY b ORDER BY b
"""
_WHOLE_HOURS = """
SELECT bucket, min, max, sum, count FROM history_hour
WHERE device_id = %(device)s AND pin = %(pin)s AND bucket >= %(start)s AND bucket < %(hours_end)s
  AND bucket <> ALL(%(cut_hours)s::timestamptz[])"""
# OFFSET 0 keeps each LATERAL subquery a scan of one period through the index; flattened into
# a join, a table without statistics yet (just written) had every minute of the year read
# and filtered (350 ms instead of 8 for a year into 1,000 buckets).
_MINUTES_OF_CUT_HOURS = """
SELECT m.* FROM unnest(%(cut_hours)s::timestamptz[]) AS c (hour)
CROSS JOIN LATERAL (
    SELECT bucket, min, max, sum, count FROM history_minute
    WHERE device_id = %(device)s AND pin = %(pin)s AND bucket >= c.hour AND bucket < c.hour + interval '1 hour'
      AND bucket >= %(start)s AND bucket < %(minutes_end)s
    OFFSET 0) AS m"""
_MINUTES = """
SELECT bucket, min, max, sum, count FROM history_minute
WHERE device_id = %(device)s AND pin = %(pin)s AND bucket >= %(start)s AND bucket < %(minutes_end)s"""
_RAW_OF_CUT_MINUTES = """
SELECT p.ts, p.value, p.value, p.value, 1 FROM unnest(%(cut_minutes)s::timestamptz[]) AS c (minute)
CROSS JOIN LATERAL (
    SELECT ts, value FROM history_points(%(device)s, %(pin)s, greatest(c.minute, %(start)s),
                                         least(c.minute + interval '1 minute', %(end)s))
    WHERE value IS NOT NULL OFFSET 0) AS p"""
_RAW = """
SELECT ts, value, value, value, 1 FROM history_points(%(device)s, %(pin)s, %(start)s, %(end)s)
WHERE value IS NOT NULL"""
_RAW_PAGE_SQL = """
SELECT ts, value, text_value FROM history_points(%(device)s, %(pin)s, %(from)s, %(end)s)
ORDER BY ts, value NULLS FIRST, text_value NULLS FIRST OFFSET %(skip)s LIMIT %(limit)s
"""
_COUNT_SQL = "SELECT count(*) FROM history_points(%(device)s, %(pin)s, %(start)s, %(end)s)"
_RAW_ALL_SQL = """
SELECT ts, value, text_value FROM history_points(%(device)s, %(pin)s, %(start)s, %(end)s) ORDER BY ts
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One chart point: the bucket's start and the min, max, average and count inside it."""

    ts: datetime
    min: float
    max: float
    avg: float
    count: int


@dataclass(frozen=True, slots=True)
class Series:
    """Buckets of one datastream over a range, and where they were read from."""

    source: str  # "history", "history_minute" or "history_hour"
    width: timedelta
    buckets: list[Bucket]


@dataclass(frozen=True, slots=True)
class RawPoint:
    """A stored raw point."""

    ts: datetime
    value: float | None
    text: str | None


def choose_source(width: timedelta, save_raw: bool) -> str:
    """The table to read buckets of ``width`` from."""
    if save_raw and width < timedelta(minutes=1):
        return "history"
    if width < timedelta(hours=1):
        return "history_minute"
    return "history_hour"


def _check_range(start: datetime, end: datetime, points: int) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("start and end must carry a time zone")
    if end <= start:
        raise ValidationError("end must be after start")
    if not 1 <= points <= MAX_POINTS:
        raise ValidationError(f"points must be 1..{MAX_POINTS}")


@dataclass(frozen=True, slots=True)
class Grid:
    """Where the buckets of a series lie: bucket k is [anchor + k*width, anchor + (k+1)*width),
    cut to the range [start, end], the last bucket also holding ``end`` (even where ``end`` is
    a bucket edge); ``raw`` says whether the datastream keeps raw points."""

    start: datetime
    end: datetime
    anchor: datetime
    width: timedelta
    raw: bool

    @classmethod
    def plan(cls, start: datetime, end: datetime, points: int, save_raw: bool) -> Grid:
        """The grid of at most ``points`` buckets over [start, end] (see the module docstring)."""
        if save_raw and (end - start) / points < MINUTE:
            width = max(_ceil_div(end - start, points, _MICROSECOND), timedelta(milliseconds=1))
            return cls(start, end, start, width, save_raw)
        unit = MINUTE if (end - start) / points < HOUR_ALIGNED else HOUR
        anchor = _floor(start, unit)
        return cls(start, end, anchor, _ceil_div(end - anchor, points, unit), save_raw)

    @property
    def source(self) -> str:
        """The coarsest table the buckets are read from."""
        return choose_source(self.width, self.raw)

    @property
    def stop(self) -> datetime:
        """The first instant after the range: timestamps are whole microseconds, so [start, end]
        is [start, end + 1 µs), which is what the SQL reads (without raw points, a minute whose
        start is ``end`` counts, as its start lies in the range)."""
        return self.end + _MICROSECOND

    @property
    def last(self) -> datetime:
        """The start of the last bucket: the one holding the instant just before ``end``, and
        ``end`` too."""
        return self.anchor + (self.end - _MICROSECOND - self.anchor) // self.width * self.width

    @property
    def resolution(self) -> timedelta:
        """The finest time stored: a microsecond with raw points, else a minute."""
        return _MICROSECOND if self.raw else MINUTE

    def edges(self) -> list[datetime]:
        """The range's start, every bucket edge inside it and the range's :attr:`stop` (an edge
        at ``end`` is none: ``end`` belongs to the last bucket)."""
        steps = -(-(self.end - self.anchor) // self.width)
        inner = (self.anchor + k * self.width for k in range(1, steps))
        return [self.start, *(t for t in inner if self.start < t < self.end), self.stop]

    def cut(self, unit: timedelta) -> list[datetime]:
        """The periods of ``unit`` (minutes or hours) that an edge falls inside: neither wholly
        in one bucket nor wholly in or out of the range, so read from finer data."""
        periods = set()
        for edge in self.edges():
            period = _floor(edge - _MICROSECOND, unit)  # period < edge <= period + unit
            if edge <= period + unit - self.resolution:
                periods.add(period)
        return sorted(periods)

    def query(self) -> tuple[str, dict[str, object]]:
        """The SQL of the buckets and its parameters (device and pin left to the caller)."""
        params: dict[str, object] = {
            "width": self.width,
            "anchor": self.anchor,
            "last": self.last,
            "start": self.start,
            "end": self.stop,
            "minutes_end": self.stop - MINUTE + self.resolution,
            "hours_end": self.stop - HOUR + self.resolution,
            "cut_minutes": self.cut(MINUTE) if self.raw else [],
            "cut_hours": self.cut(HOUR) if self.source == "history_hour" else [],
        }
        if self.source == "history":
            parts = [_RAW]
        elif self.source == "history_minute":
            parts = [_MINUTES]
        else:
            parts = [_WHOLE_HOURS, _MINUTES_OF_CUT_HOURS]
        if self.raw and self.source != "history":
            parts.append(_RAW_OF_CUT_MINUTES)
        return _BUCKETS_SQL.format(parts="\nUNION ALL".join(parts)), params


def _floor(ts: datetime, unit: timedelta) -> datetime:
    """The start of the ``unit`` (a minute or an hour, aligned to the epoch) holding ``ts``."""
    return _EPOCH + (ts - _EPOCH) // unit * unit


def _ceil_div(span: timedelta, parts: int, unit: timedelta) -> timedelta:
    """The smallest whole number of ``unit`` that ``parts`` times covers ``span``."""
    return -(-span // (unit * parts)) * unit


async def series(
    pool: AsyncConnectionPool,
    device_id: int,
    pin: int,
    start: datetime,
    end: datetime,
    points: int = 1000,
    *,
    save_raw: bool = True,
) -> Series:
    """At most ``points`` buckets covering [start, end], holding exactly its stored points.

    The range is closed: a point stamped ``end`` is in the last bucket (and, without raw points,
    the minute starting at ``end``; see the module docstring). Raw pages, counts and exports
    (:func:`raw_page`, :func:`count_raw`, :func:`stream_raw`) are unchanged: they read the
    half-open [start, end), without a point stamped ``end``.

    A bucket's ``ts`` is where its span starts inside the range (the first bucket's is ``start``).
    """
    _check_range(start, end, points)
    grid = Grid.plan(start, end, points, save_raw)
    sql, params = grid.query()
    params.update(device=device_id, pin=pin)
    async with pool.connection() as conn:  # planned for these values: a generic plan prunes no partition
        rows = await (await conn.execute(sql, params, prepare=False)).fetchall()
    return Series(grid.source, grid.width, [Bucket(max(r[0], start), r[1], r[2], r[3], int(r[4])) for r in rows])


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the next raw page starts: after ``skip`` points stamped ``ts`` (keyset paging that
    never drops or repeats points sharing a timestamp)."""

    ts: datetime
    skip: int


async def raw_page(
    pool: AsyncConnectionPool,
    device_id: int,
    pin: int,
    start: datetime,
    end: datetime,
    limit: int = 1000,
    cursor: PageCursor | None = None,
) -> tuple[list[RawPoint], PageCursor | None]:
    """Up to ``limit`` raw points in time order, and the cursor of the next page (None at the end)."""
    _check_range(start, end, 1)
    if not 1 <= limit <= MAX_POINTS:
        raise ValidationError(f"limit must be 1..{MAX_POINTS}")
    params = {
        "device": device_id,
        "pin": pin,
        "end": end,
        "limit": limit,
        "from": cursor.ts if cursor else start,
        "skip": cursor.skip if cursor else 0,
    }
    async with pool.connection() as conn:
        rows = await (await conn.execute(_RAW_PAGE_SQL, params)).fetchall()
    points = [RawPoint(ts, value, text) for ts, value, text in rows]
    if len(points) < limit:
        return points, None
    last = points[-1].ts
    same = sum(1 for p in points if p.ts == last)
    skip = same + (cursor.skip if cursor and cursor.ts == last else 0)
    return points, PageCursor(last, skip)


async def count_raw(pool: AsyncConnectionPool, device_id: int, pin: int, start: datetime, end: datetime) -> int:
    """How many raw points (unpacked or packed) the range holds."""
    _check_range(start, end, 1)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(_COUNT_SQL, {"device": device_id, "pin": pin, "start": start, "end": end})
        ).fetchone()
    return int(row[0]) if row else 0


async def stream_raw(
    pool: AsyncConnectionPool, device_id: int, pin: int, start: datetime, end: datetime, chunk: int = 5000
) -> AsyncIterator[RawPoint]:
    """Every raw point of the range through a server-side cursor: memory does not grow with
    the range (at most ``chunk`` rows are held at once)."""
    _check_range(start, end, 1)
    params = {"device": device_id, "pin": pin, "start": start, "end": end}
    async with pool.connection() as conn, conn.transaction():
        async with conn.cursor(name="stream_raw") as cur:
            cur.itersize = chunk
            await cur.execute(_RAW_ALL_SQL, params)
            async for ts, value, text in cur:
                yield RawPoint(ts, value, text)
