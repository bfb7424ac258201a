"""Per-minute and per-hour rollups of numeric history, maintained as rows are written.

Each batch is aggregated in memory per (device, pin, bucket), copied into a temporary table
and merged with one ``INSERT ... ON CONFLICT DO UPDATE``: a few rows per device and minute
instead of one per point, in the same transaction as the raw rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from psycopg import AsyncConnection

LEVELS: dict[str, int] = {"history_minute": 60, "history_hour": 3600}
"""Rollup tables and their bucket width in seconds, finest first."""

_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS _rollup (device_id int4, pin int2, bucket timestamptz, min float8, max float8,
    sum float8, count int4, last float8, last_ts timestamptz) ON COMMIT DELETE ROWS
"""
_MERGE = """
INSERT INTO {table} AS h (device_id, pin, bucket, min, max, sum, count, last, last_ts)
SELECT device_id, pin, bucket, min, max, sum, count, last, last_ts FROM _rollup
ON CONFLICT (device_id, pin, bucket) DO UPDATE SET
    min = LEAST(h.min, EXCLUDED.min), max = GREATEST(h.max, EXCLUDED.max),
    sum = h.sum + EXCLUDED.sum, count = h.count + EXCLUDED.count,
    last = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.last ELSE h.last END,
    last_ts = GREATEST(h.last_ts, EXCLUDED.last_ts)
"""
_COPY = "COPY _rollup FROM STDIN (FORMAT BINARY)"
_TYPES = ["int4", "int2", "timestamptz", "float8", "float8", "float8", "int4", "float8", "timestamptz"]


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


Point = tuple[int, int, datetime, float]  # device_id, pin, ts, value
Key = tuple[int, int, int]  # device_id, pin, bucket start in epoch seconds


def bucket_of(ts: datetime, width: int) -> datetime:
    """The start of the ``width``-second bucket holding ``ts`` (aligned to the epoch, UTC)."""
    return datetime.fromtimestamp(int(ts.timestamp()) // width * width, tz=timezone.utc)


def aggregate(points: Iterable[Point], width: int) -> dict[Key, Aggregate]:
    """Aggregate points into buckets of ``width`` seconds (keys carry epoch seconds)."""
    out: dict[Key, Aggregate] = {}
    for device_id, pin, ts, value in points:
        key = (device_id, pin, int(ts.timestamp()) // width * width)
        agg = out.get(key)
        if agg is None:
            out[key] = Aggregate(value, value, value, 1, value, ts)
        else:
            agg.add(value, ts)
    return out


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


async def merge_rollups(conn: AsyncConnection, points: list[Point]) -> None:
    """Fold ``points`` into every rollup table (call inside the batch's transaction)."""
    if not points:
        return
    await conn.execute(_TEMP)
    levels = iter(LEVELS.items())
    table, width = next(levels)
    aggregates = aggregate(points, width)
    while True:
        await _merge(conn, table, aggregates)
        try:
            table, width = next(levels)
        except StopIteration:
            return
        aggregates = coarsen(aggregates, width)


async def _merge(conn: AsyncConnection, table: str, aggregates: dict[Key, Aggregate]) -> None:
    async with conn.cursor().copy(_COPY) as copy:
        copy.set_types(_TYPES)
        for (device_id, pin, start), a in aggregates.items():
            bucket = datetime.fromtimestamp(start, tz=timezone.utc)
            await copy.write_row((device_id, pin, bucket, a.min, a.max, a.sum, a.count, a.last, a.last_ts))
    await conn.execute(_MERGE.format(table=table))
    await conn.execute("TRUNCATE _rollup")
