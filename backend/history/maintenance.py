"""The history maintenance job: partitions ahead, retention behind.

Retention is global (settings) and may be set per template. Whole partitions are dropped once
no template needs them any more (the longest retention wins); the devices of templates with a
shorter retention have their older rows deleted from the partitions still kept. Dropping a
partition is instant; the deletes touch only the days between the two retentions.

The devices' actions log (``device_action``: values set by users and API clients) is kept as
long as the raw history of the same device, so it is trimmed here with the same retentions.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from backend.history.packing import PACKED, pack_closed_days
from backend.history.partitions import HISTORY, HOUR, MINUTE, PartitionedTable, drop_expired, ensure_partitions
from backend.history.timescale import is_hypertable, set_retention

log = logging.getLogger(__name__)

_OVERRIDES_SQL = "SELECT id, raw_retention_days, rollup_retention_days FROM template"
_TRIM_SQL = """
DELETE FROM {table} h USING device d
WHERE h.device_id = d.id AND d.template_id = ANY(%s) AND h.{column} < %s
"""
_ACTIONS_SQL = """
DELETE FROM device_action a USING device d JOIN template t ON t.id = d.template_id
WHERE a.device_id = d.id AND a.created_at < %(oldest)s
  AND a.created_at < %(now)s - make_interval(days => COALESCE(NULLIF(t.raw_retention_days, 0), %(days)s))
"""


@dataclass(frozen=True)
class Retention:
    """How long raw points and rollups are kept, unless a template says otherwise."""

    raw_days: int = 30
    rollup_days: int = 365

    def __post_init__(self) -> None:
        if self.raw_days < 1 or self.rollup_days < 1:
            raise ValueError("retention must be at least one day")


async def maintain(pool: AsyncConnectionPool, retention: Retention, days_ahead: int = 3) -> dict[str, list[str]]:
    """Create partitions ``days_ahead`` days ahead, pack finished days, apply retention; what
    was created, packed and dropped."""
    created = await ensure_partitions(pool, days_back=1, days_ahead=days_ahead)
    raw_days, rollup_days = await _template_retentions(pool, retention)
    dropped = await _apply(pool, HISTORY, raw_days)  # before packing: never pack what goes
    dropped += await _apply(pool, PACKED, raw_days)
    for table in (MINUTE, HOUR):
        dropped += await _apply(pool, table, rollup_days)
    packed = await pack_closed_days(pool, keep_raw_days=1)
    await trim_actions(pool, retention.raw_days, min(raw_days.values()))
    if created or dropped:
        log.info("history maintenance: created %s; dropped %s", created or "nothing", dropped or "nothing")
    return {"created": created, "packed": packed, "dropped": dropped}


async def trim_actions(pool: AsyncConnectionPool, default_days: int, shortest_days: int) -> int:
    """Delete actions log entries older than their device's raw history retention (the template's,
    or ``default_days``); only entries older than ``shortest_days`` are looked at."""
    now = datetime.now(UTC)
    async with pool.connection() as conn:
        result = await conn.execute(
            _ACTIONS_SQL, {"now": now, "oldest": now - timedelta(days=shortest_days), "days": default_days}
        )
    if result.rowcount:
        log.info("retention removed %d actions log entries", result.rowcount)
    return result.rowcount


async def _template_retentions(
    pool: AsyncConnectionPool, retention: Retention
) -> tuple[dict[int, int], dict[int, int]]:
    """Each template's effective raw and rollup retention in days."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(_OVERRIDES_SQL)).fetchall()
    raw = {tid: r or retention.raw_days for tid, r, _ in rows}
    rollup = {tid: r or retention.rollup_days for tid, _, r in rows}
    raw[0] = retention.raw_days  # the global setting always counts, templates or not
    rollup[0] = retention.rollup_days
    return raw, rollup


async def _apply(pool: AsyncConnectionPool, table: PartitionedTable, days: dict[int, int]) -> list[str]:
    """Drop what no template keeps; trim the templates that keep less than the longest."""
    now = datetime.now(UTC)
    longest = max(days.values())
    async with pool.connection() as conn:
        hypertable = table is HISTORY and await is_hypertable(conn)
        if hypertable:  # TimescaleDB's retention policy drops history's chunks
            await set_retention(conn, longest)
    dropped = [] if hypertable else await drop_expired(pool, table, now - timedelta(days=longest))
    shorter: dict[int, list[int]] = defaultdict(list)
    for template_id, keep in days.items():
        if template_id and keep < longest:
            shorter[keep].append(template_id)
    async with pool.connection() as conn:
        for keep, templates in sorted(shorter.items()):
            result = await conn.execute(
                _TRIM_SQL.format(table=table.name, column=table.column), (templates, now - timedelta(days=keep))
            )
            if result.rowcount:
                log.info(
                    "retention removed %d %s rows of templates %s (kept %d days)",
                    result.rowcount,
                    table.name,
                    templates,
                    keep,
                )
    return dropped
