"""Packing finished days of raw history into segments (migration 0008).

A raw point is a row of its own: about 100 bytes on disk with its share of the index. Once a
daily partition of ``history`` is no longer written to, :func:`pack_closed_days` turns each
(device, pin, UTC hour) of it into one ``history_packed`` row holding the points' microsecond
offsets and values as arrays (about 16 bytes a point), and drops the raw partition in the same
transaction: readers see the day either raw or packed, never both, never neither. Points that
arrive for a packed day later (a timestamped batch) land in the default partition and are
packed by a later run. ``history_points()`` reads both forms.

This is the plain-PostgreSQL path. On TimescaleDB, ``history`` is a hypertable with native
compression instead (:mod:`backend.history.timescale`) and nothing is packed here.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backend.history.partitions import HISTORY, PartitionedTable, partitions
from backend.history.timescale import is_hypertable

log = logging.getLogger(__name__)

PACKED = PartitionedTable("history_packed", "hour", "day")

_PACK_SQL = """
INSERT INTO history_packed (device_id, pin, hour, first_ts, last_ts, offsets, "values", texts)
SELECT device_id, pin, hour, min(ts), max(ts),
       array_agg(((extract(epoch FROM ts - hour)) * 1000000)::bigint ORDER BY ts),
       CASE WHEN count(value) > 0 THEN array_agg(value ORDER BY ts) END,
       CASE WHEN count(text_value) > 0 THEN array_agg(text_value ORDER BY ts) END
FROM (SELECT device_id, pin, ts, value, text_value,
             date_bin('1 hour', ts, timestamptz '2000-01-01 00:00:00+00') AS hour
      FROM {source}) raw
GROUP BY device_id, pin, hour
"""
_PACK_DEFAULT_SQL = """
WITH moved AS (DELETE FROM history_default WHERE ts < %(cutoff)s RETURNING *)
""" + _PACK_SQL.format(source="moved")
LOCK_TIMEOUT = "5s"
"""How long packing waits for readers of a day (a long export) before trying next run."""


async def pack_closed_days(pool: AsyncConnectionPool, keep_raw_days: int = 1) -> list[str]:
    """Pack every daily ``history`` partition that ended more than ``keep_raw_days`` days
    ago, and default-partition rows older than that; the names of the partitions packed.

    ``keep_raw_days`` must cover the partitions :func:`ensure_partitions` creates behind
    today (``days_back``), or they would be created again after being packed.
    """
    today = datetime.now(UTC).date()
    cutoff = datetime.combine(today - timedelta(days=keep_raw_days), datetime.min.time(), UTC)
    packed: list[str] = []
    async with pool.connection() as conn:
        if await is_hypertable(conn):
            return packed
        for name, start, end in await partitions(conn, HISTORY):
            if end.astimezone(UTC) <= cutoff and await _pack_partition(conn, name, start.date()):
                packed.append(name)
        await _pack_default(conn, cutoff)
    if packed:
        log.info("packed history partitions %s", ", ".join(packed))
    return packed


async def _pack_partition(conn: AsyncConnection, name: str, day: date) -> bool:
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            empty = await (await conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {name})")).fetchone()
            if not (empty and empty[0]):
                await _ensure_packed_partition(conn, day)
                await conn.execute(_PACK_SQL.format(source=name))
            await conn.execute(f"DROP TABLE {name}")
    except psycopg.errors.LockNotAvailable:
        log.info("history partition %s is being read; packing it on the next run", name)
        return False
    except psycopg.errors.UndefinedTable:
        return False  # another process packed it meanwhile
    return True


async def _pack_default(conn: AsyncConnection, cutoff: datetime) -> None:
    """Pack what sits in the default partition before ``cutoff`` (late or very old points)."""
    async with conn.transaction():
        days = await (
            await conn.execute(
                "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM history_default WHERE ts < %s", (cutoff,)
            )
        ).fetchall()
        for (day,) in days:
            await _ensure_packed_partition(conn, day)
        result = await conn.execute(_PACK_DEFAULT_SQL, {"cutoff": cutoff})
    if result.rowcount:
        log.info("packed late history points into %d segments", result.rowcount)


async def _ensure_packed_partition(conn: AsyncConnection, day: date) -> None:
    """The daily ``history_packed`` partition of ``day`` (retention drops whole days)."""
    name = PACKED.partition_name(day)
    exists = await (await conn.execute("SELECT to_regclass(%s)", (name,))).fetchone()
    if exists and exists[0] is not None:
        return
    end = PACKED.next_start(day)
    await conn.execute(
        f"CREATE TABLE {name} PARTITION OF history_packed "
        f"FOR VALUES FROM ('{day} 00:00:00+00') TO ('{end} 00:00:00+00')"
    )
