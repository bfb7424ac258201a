"""Per-minute and per-hour rollups of numeric history, maintained as rows are written.

Each batch's points are copied (binary COPY) into a temporary table and folded into every
rollup table by one statement, in the same transaction as the raw rows: PostgreSQL groups
them per (device, pin, bucket), each coarser level from the finer one, and merges the groups
with ``INSERT ... ON CONFLICT DO UPDATE`` — a few rows per device and minute instead of one
per point. The aggregation runs in the database process, not in the app's event loop, which
is what the ingest is short of (``tests/bench/bench_history.py``).

:func:`aggregate` states the same rule in Python (min, max, sum, count, and the last value by
timestamp, a later point of the batch winning a tie), for the tests and for readers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from psycopg import AsyncConnection

LEVELS: dict[str, int] = {"history_minute": 60, "history_hour": 3600}
"""Rollup tables and their bucket width in seconds, finest first."""

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS _history_stage (device_id int4, pin int2, ts timestamptz, value float8,
    text_value text, raw bool, seq int4) ON COMMIT DELETE ROWS
"""
_COPY = "COPY _history_stage (device_id, pin, ts, value, text_value, raw, seq) FROM STDIN (FORMAT BINARY)"
_TYPES = ["int4", "int2", "timestamptz", "float8", "text", "bool", "int4"]

_RAW = """
    INSERT INTO history (device_id, pin, ts, value, text_value)
    SELECT device_id, pin, ts, value, text_value FROM _history_stage WHERE raw ORDER BY seq"""
_FINEST = """
    SELECT device_id, pin, date_bin('{width} seconds', ts, TIMESTAMPTZ 'epoch') AS bucket,
           min(value) AS min, max(value) AS max, sum(value) AS sum, count(*)::int4 AS count,
           (array_agg(value ORDER BY ts DESC, seq DESC))[1] AS last, max(ts) AS last_ts
    FROM _history_stage WHERE value IS NOT NULL GROUP BY 1, 2, 3"""
_COARSER = """
    SELECT device_id, pin, date_bin('{width} seconds', bucket, TIMESTAMPTZ 'epoch') AS bucket,
           min(min) AS min, max(max) AS max, sum(sum) AS sum, sum(count)::int4 AS count,
           (array_agg(last ORDER BY last_ts DESC))[1] AS last, max(last_ts) AS last_ts
    FROM {finer} GROUP BY 1, 2, 3"""
_UPSERT = """
    INSERT INTO {table} AS h (device_id, pin, bucket, min, max, sum, count, last, last_ts)
    SELECT device_id, pin, bucket, min, max, sum, count, last, last_ts FROM {source}
    ON CONFLICT (device_id, pin, bucket) DO UPDATE SET
        min = LEAST(h.min, EXCLUDED.min), max = GREATEST(h.max, EXCLUDED.max),
        sum = h.sum + EXCLUDED.sum, count = h.count + EXCLUDED.count,
        last = CASE WHEN EXCLUDED.last_ts >= h.last_ts THEN EXCLUDED.last ELSE h.last END,
        last_ts = GREATEST(h.last_ts, EXCLUDED.last_ts)"""


def _store_sql(levels: dict[str, int]) -> str:
    """One statement: the raw rows into ``history``, and the numbers grouped per level (each
    level from the finer one) and upserted into its table."""
    ctes, finer = [f"raw AS ({_RAW})"], ""
    for i, (_table, width) in enumerate(levels.items()):
        body = _FINEST.format(width=width) if not finer else _COARSER.format(width=width, finer=finer)
        finer = f"g{i}"
        ctes.append(f"{finer} AS ({body})")
    *upserts, last = [_UPSERT.format(table=table, source=f"g{i}") for i, table in enumerate(levels)]
    ctes += [f"u{i} AS ({sql})" for i, sql in enumerate(upserts)]
    return "WITH " + ",\n".join(ctes) + "\n" + last


_STORE = _store_sql(LEVELS)

StagedRow = tuple[int, int, datetime, float | None, str | None, bool]
"""device_id, pin, ts, value, text_value (as stored: see ``db_text``), raw (keep the point itself)"""

Point = tuple[int, int, datetime, float]  # device_id, pin, ts, value
Key = tuple[int, int, int]  # device_id, pin, bucket start in epoch seconds


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


def bucket_of(ts: datetime, width: int) -> datetime:
    """The start of the ``width``-second bucket holding ``ts`` (aligned to the epoch, UTC)."""
    return datetime.fromtimestamp(int(ts.timestamp()) // width * width, tz=timezone.utc)


def aggregate(points: Iterable[Point], width: int) -> dict[Key, Aggregate]:
    """Aggregate points into buckets of ``width`` seconds (keys carry epoch seconds): the rule
    the merge statement applies in the database."""
    out: dict[Key, Aggregate] = {}
    for device_id, pin, ts, value in points:
        key = (device_id, pin, int(ts.timestamp()) // width * width)
        agg = out.get(key)
        if agg is None:
            out[key] = Aggregate(value, value, value, 1, value, ts)
        else:
            agg.add(value, ts)
    return out


async def store(conn: AsyncConnection, rows: Iterable[StagedRow]) -> None:
    """Store a batch, once per transaction: the rows marked raw as points in ``history``, every
    number into every rollup table. The rows are copied once, into a temporary table that the
    commit empties, and one statement does the rest in the database."""
    await conn.execute(_STAGE)
    async with conn.cursor().copy(_COPY) as copy:
        copy.set_types(_TYPES)
        seq = 0
        for device_id, pin, ts, value, text, raw in rows:
            await copy.write_row((device_id, pin, ts, value, text, raw, seq))
            seq += 1
    await conn.execute(_STORE)


async def merge_rollups(conn: AsyncConnection, points: Sequence[Point]) -> None:
    """Fold ``points`` into every rollup table (call inside the caller's transaction, as many
    times as it needs)."""
    if not points:
        return
    await store(conn, ((device_id, pin, ts, value, None, False) for device_id, pin, ts, value in points))
    await conn.execute("TRUNCATE _history_stage")
