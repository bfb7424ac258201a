"""Per-minute and per-hour rollups of numeric history, maintained as rows are written.

Each batch is aggregated in memory per (device, pin, bucket), minutes from the points and
hours from the minutes; both levels are copied into a temporary table in one binary COPY and
merged by one statement (``INSERT ... ON CONFLICT DO UPDATE`` per level): a few rows per
device and minute instead of one per point, in the same transaction as the raw rows. The
history writer has two batches in flight at a time; each merges its rows in key order, so two
batches that touch the same buckets lock them in the same order and one waits for the other
instead of deadlocking.

Aggregating here rather than in PostgreSQL (copy every point to a staging table, group
there) was measured both ways on 200,000 points: the database route saved up to 1 µs of the
app's time a point with raw points and nothing with rollup-only points, but cost 1 to 1.4 µs
more of the database's, and its batches took longer (4 against 3 µs a raw point, 2.4 against
1.2 µs a rollup-only one). The app and the database share this machine's two cores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

LEVELS: dict[str, int] = {"history_minute": 60, "history_hour": 3600}
"""Rollup tables and their bucket width in seconds, finest first."""

_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS _rollup (level int2, device_id int4, pin int2, bucket timestamptz, min float8,
    max float8, sum float8, count int4, last float8, last_ts timestamptz) ON COMMIT DELETE ROWS
"""
_COPY = "COPY _rollup FROM STDIN (FORMAT BINARY)"
_TYPES = ["int2", "int4", "int2", "timestamptz", "float8", "float8", "float8", "int4", "float8", "timestamptz"]
_UPSERT = """
    INSERT INTO {table} AS h (device_id, pin, bucket, min, max, sum, count, last, last_ts)
    SELECT device_id, pin, bucket, min, max, sum, count, last, last_ts FROM _rollup WHERE level = {level}
    ORDER BY device_id, pin, bucket
    ON CONFLICT (device_id, pin, bucket) DO UPDATE SET
        min = LEAST(h.min, EXCLUDED.min), max = GREATEST(h.max, EXCLUDED.max),
        sum = h.sum + EXCLUDED.sum, count = h.count + EXCLUDED.count,
        last = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.last ELSE h.last END,
        last_ts = GREATEST(h.last_ts, EXCLUDED.last_ts)"""


def _merge_sql(tables: Iterable[str]) -> str:
    """One statement: upsert every level from the temporary table, and empty it (every part
    of a statement sees the rows as they were when it began)."""
    parts = ["cleared AS (DELETE FROM _rollup)"]
    parts += [f"u{level} AS ({_UPSERT.format(table=table, level=level)})" for level, table in enumerate(tables)]
    return "WITH " + ",\n".join(parts) + "\nSELECT 1"


_MERGE = _merge_sql(LEVELS)


@dataclass(slots=True)
class Aggregate:
    """min, max, sum, count and the last value (by timestamp) of one bucket."""

    min: float
    max: float
    sum: float
    count: int
    last: float
    last_ts: datetime

    def add(self, value: float, ts: datetime) -> None:
        """Fold one more point in."""
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.sum += value
        self.count += 1
        if ts >= self.last_ts:
            self.last, self.last_ts = value, ts


Row = tuple[int, int, datetime, float | None, str | None, bool]
"""A history row as the writer queues it: device_id, pin, ts, value (None for text), text,
and whether the raw point is kept."""
Key = tuple[int, int, int]  # device_id, pin, bucket start in epoch seconds


def bucket_of(ts: datetime, width: int) -> datetime:
    """The start of the ``width``-second bucket holding ``ts`` (aligned to the epoch, UTC)."""
    return datetime.fromtimestamp(int(ts.timestamp()) // width * width, tz=UTC)


def aggregate(rows: Iterable[Row], width: int) -> dict[Key, Aggregate]:
    """Aggregate the numbers of ``rows`` into buckets of ``width`` seconds (keys carry epoch
    seconds); rows without a number are skipped.

    Once per stored point, so written for speed: :meth:`Aggregate.add` inline (same rule, a
    later point winning a tie on time), and the bucket of the point before reused while
    points fall into it (a batch's points are mostly minutes of the same few buckets), which
    saves working out an epoch second per point."""
    out: dict[Key, Aggregate] = {}
    get = out.get
    span = timedelta(seconds=width)
    low = high = _EPOCH  # the bucket of the point before, [low, high); none yet
    start = 0
    for device_id, pin, ts, value, _text, _raw in rows:
        if value is None:
            continue
        if not low <= ts < high:
            start = int(ts.timestamp()) // width * width
            low = datetime.fromtimestamp(start, tz=UTC)
            high = low + span
            if ts < low:  # before 1970, where int() rounds up: keep the rule, skip the cache
                low = high
        key = (device_id, pin, start)
        agg = get(key)
        if agg is None:
            out[key] = Aggregate(value, value, value, 1, value, ts)
            continue
        if value < agg.min:
            agg.min = value
        if value > agg.max:
            agg.max = value
        agg.sum += value
        agg.count += 1
        if ts >= agg.last_ts:
            agg.last, agg.last_ts = value, ts
    return out


_EPOCH = datetime.fromtimestamp(0, tz=UTC)


def coarsen(fine: dict[Key, Aggregate], width: int) -> dict[Key, Aggregate]:
    """Fold finer buckets into ``width``-second buckets (hours from minutes)."""
    out: dict[Key, Aggregate] = {}
    for (device_id, pin, start), a in fine.items():
        key = (device_id, pin, start // width * width)
        agg = out.get(key)
        if agg is None:
            out[key] = Aggregate(a.min, a.max, a.sum, a.count, a.last, a.last_ts)
        else:
            agg.min, agg.max = min(agg.min, a.min), max(agg.max, a.max)
            agg.sum += a.sum
            agg.count += a.count
            if a.last_ts >= agg.last_ts:
                agg.last, agg.last_ts = a.last, a.last_ts
    return out


def aggregate_levels(rows: Sequence[Row]) -> list[dict[Key, Aggregate]]:
    """The aggregates of the numbers of ``rows`` for every level of :data:`LEVELS`, finest
    first (none when no row has a number)."""
    widths = iter(LEVELS.values())
    levels = [aggregate(rows, next(widths))]
    if not levels[0]:
        return []
    for width in widths:
        levels.append(coarsen(levels[-1], width))
    return levels


async def merge_rollups(conn: AsyncConnection, rows: Sequence[Row]) -> None:
    """Fold the numbers of ``rows`` into every rollup table (call inside the batch's transaction)."""
    await merge_levels(conn, aggregate_levels(rows))


async def merge_levels(conn: AsyncConnection, levels: Sequence[dict[Key, Aggregate]]) -> None:
    """Fold the aggregates of :func:`aggregate_levels` into the rollup tables (call inside the
    batch's transaction)."""
    if not levels:
        return
    await conn.execute(_TEMP)
    async with conn.cursor().copy(_COPY) as copy:
        copy.set_types(_TYPES)
        for level, aggregates in enumerate(levels):
            for (device_id, pin, start), a in aggregates.items():
                bucket = datetime.fromtimestamp(start, tz=UTC)
                await copy.write_row((level, device_id, pin, bucket, a.min, a.max, a.sum, a.count, a.last, a.last_ts))
    await conn.execute(_MERGE)
