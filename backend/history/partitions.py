"""Time partitions of the history tables: created ahead, dropped when they expire.

``history`` has daily partitions (raw retention is short and dropping a day is instant);
the rollup tables have monthly ones. Each table also has a DEFAULT partition that catches
rows outside every partition, so a late or early point is never refused; the maintenance job
deletes expired rows from it too.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backend.history.timescale import is_hypertable

log = logging.getLogger(__name__)
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class PartitionedTable:
    """A table partitioned by range of a timestamp column."""

    name: str
    column: str
    unit: str  # "day" or "month"

    def start_of(self, day: date) -> date:
        """The first day of the partition holding ``day``."""
        return day if self.unit == "day" else day.replace(day=1)

    def next_start(self, start: date) -> date:
        """The first day of the following partition."""
        if self.unit == "day":
            return start + timedelta(days=1)
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)

    def partition_name(self, start: date) -> str:
        """``history_20261126`` or ``history_minute_202611``."""
        return f"{self.name}_{start:%Y%m%d}" if self.unit == "day" else f"{self.name}_{start:%Y%m}"


HISTORY = PartitionedTable("history", "ts", "day")
MINUTE = PartitionedTable("history_minute", "bucket", "month")
HOUR = PartitionedTable("history_hour", "bucket", "month")
TABLES = (HISTORY, MINUTE, HOUR)


async def ensure_partitions(pool: AsyncConnectionPool, days_back: int = 1, days_ahead: int = 3) -> list[str]:
    """Create the partitions covering ``days_back`` days ago to ``days_ahead`` days ahead."""
    created: list[str] = []
    today = datetime.now(UTC).date()
    async with pool.connection() as conn:
        hypertable = await is_hypertable(conn)  # TimescaleDB makes its own chunks
        for table in TABLES:
            if table is HISTORY and hypertable:
                continue
            start = table.start_of(today - timedelta(days=days_back))
            last = today + timedelta(days=days_ahead)
            while start <= last:
                end = table.next_start(start)
                if await _create(conn, table, start, end):
                    created.append(table.partition_name(start))
                start = end
    return created


async def _create(conn: AsyncConnection, table: PartitionedTable, start: date, end: date) -> bool:
    name = table.partition_name(start)
    exists = await (await conn.execute("SELECT to_regclass(%s)", (name,))).fetchone()
    if exists and exists[0] is not None:
        return False
    try:
        await conn.execute(f"CREATE TABLE {name} PARTITION OF {table.name} FOR VALUES FROM ('{start}') TO ('{end}')")
    except psycopg.errors.DuplicateTable:
        return False  # another process made it meanwhile
    except psycopg.errors.CheckViolation:
        # Rows for that range already sit in the default partition (a timestamped import
        # ahead of time, a device with a wrong clock): move them into the new partition.
        return await _create_moving_rows(conn, table, name, start, end)
    return True


async def _create_moving_rows(
    conn: AsyncConnection, table: PartitionedTable, name: str, start: date, end: date
) -> bool:
    """Create a partition whose range has rows in the default partition, moving them in."""
    default = f"{table.name}_default"
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE TABLE {name} (LIKE {table.name} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            moved = await conn.execute(
                f"WITH moved AS (DELETE FROM {default} WHERE {table.column} >= %s AND {table.column} < %s "
                f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                (start, end),
            )
            await conn.execute(
                f"ALTER TABLE {table.name} ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')"
            )
    except psycopg.errors.DuplicateTable:
        return False
    log.info("created partition %s and moved %d rows into it from %s", name, moved.rowcount, default)
    return True


async def partitions(conn: AsyncConnection, table: PartitionedTable) -> list[tuple[str, datetime, datetime]]:
    """The range partitions of ``table`` with their bounds (the default one excluded)."""
    rows = await (
        await conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            (table.name,),
        )
    ).fetchall()
    out = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:
            out.append((name, datetime.fromisoformat(match[1]), datetime.fromisoformat(match[2])))
    return sorted(out, key=lambda p: p[1])


async def drop_expired(pool: AsyncConnectionPool, table: PartitionedTable, cutoff: datetime) -> list[str]:
    """Drop partitions wholly older than ``cutoff`` and delete older rows from the default one."""
    dropped = []
    async with pool.connection() as conn:
        for name, _start, end in await partitions(conn, table):
            if end.astimezone(UTC) <= cutoff:
                await conn.execute(f"DROP TABLE IF EXISTS {name}")
                dropped.append(name)
        await conn.execute(f"DELETE FROM {table.name}_default WHERE {table.column} < %s", (cutoff,))
    if dropped:
        log.info("retention dropped %s", ", ".join(dropped))
    return dropped
