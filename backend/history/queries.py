"""Reading history: at most N buckets for a chart, raw pages, and streamed exports.

A chart asks for a range and a number of points N. The range is cut into N buckets and each
bucket carries min, max and average, so a spike shorter than a bucket still shows. The data
comes from the coarsest table that is still finer than a bucket: raw points for short ranges
(when the datastream keeps raw data), the per-minute rollup, or the per-hour rollup for long
ranges: a year at one point per minute is read from 8,760 hourly rows, not 525,600.

Raw points are read through the SQL function ``history_points()`` (migration 0008), which
returns the rows of ``history`` and the points of packed segments alike
(:mod:`backend.history.packing`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from backend.errors import ValidationError

MAX_POINTS = 10_000
_ROLLUP_SQL = """
SELECT date_bin(%(width)s, bucket, %(start)s) AS b, min(min), max(max), sum(sum) / sum(count), sum(count)::bigint
FROM {table} WHERE device_id = %(device)s AND pin = %(pin)s AND bucket >= %(start)s AND bucket < %(end)s
GROUP BY b ORDER BY b
"""
_RAW_BUCKETS_SQL = """
SELECT date_bin(%(width)s, ts, %(start)s) AS b, min(value), max(value), avg(value), count(value)
FROM history_points(%(device)s, %(pin)s, %(start)s, %(end)s) WHERE value IS NOT NULL
GROUP BY b ORDER BY b
"""
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


async def series(pool: AsyncConnectionPool, device_id: int, pin: int, start: datetime, end: datetime,
                 points: int = 1000, *, save_raw: bool = True) -> Series:
    """At most ``points`` buckets covering [start, end)."""
    _check_range(start, end, points)
    width = max((end - start) / points, timedelta(milliseconds=1))
    source = choose_source(width, save_raw)
    sql = _RAW_BUCKETS_SQL if source == "history" else _ROLLUP_SQL.format(table=source)
    params = {"width": width, "start": start, "end": end, "device": device_id, "pin": pin}
    async with pool.connection() as conn:
        rows = await (await conn.execute(sql, params)).fetchall()
    return Series(source, width, [Bucket(r[0], r[1], r[2], r[3], int(r[4])) for r in rows])


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the next raw page starts: after ``skip`` points stamped ``ts`` (keyset paging that
    never drops or repeats points sharing a timestamp)."""

    ts: datetime
    skip: int


async def raw_page(pool: AsyncConnectionPool, device_id: int, pin: int, start: datetime, end: datetime,
                   limit: int = 1000, cursor: PageCursor | None = None) -> tuple[list[RawPoint], PageCursor | None]:
    """Up to ``limit`` raw points in time order, and the cursor of the next page (None at the end)."""
    _check_range(start, end, 1)
    if not 1 <= limit <= MAX_POINTS:
        raise ValidationError(f"limit must be 1..{MAX_POINTS}")
    params = {"device": device_id, "pin": pin, "end": end, "limit": limit,
              "from": cursor.ts if cursor else start, "skip": cursor.skip if cursor else 0}
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
        row = await (await conn.execute(_COUNT_SQL, {"device": device_id, "pin": pin, "start": start,
                                                     "end": end})).fetchone()
    return int(row[0]) if row else 0


async def stream_raw(pool: AsyncConnectionPool, device_id: int, pin: int, start: datetime,
                     end: datetime, chunk: int = 5000) -> AsyncIterator[RawPoint]:
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
