"""The automation log's retention: the same rule as the devices' logs.

A run triggered by a device is kept as long as that device's raw history (its template's
``raw_retention_days``, else ``OPENBLYNK_HISTORY_RAW_RETENTION_DAYS``); any other run as long as
the setting says. Runs still going (``running``, ``waiting``) are never removed. The history
maintenance job calls :func:`trim_runs` right after it trims the devices' actions log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

_TRIM_SQL = """
DELETE FROM automation_run r
WHERE r.status IN ('ok', 'failed', 'interrupted')
  AND r.started_at < %(now)s - make_interval(days => COALESCE(
        (SELECT NULLIF(t.raw_retention_days, 0) FROM device d JOIN template t ON t.id = d.template_id
         WHERE d.id = r.trigger_device_id),
        %(days)s))
"""


async def trim_runs(pool: AsyncConnectionPool, default_days: int, now: datetime | None = None) -> int:
    """Delete finished runs (and their steps) older than their retention; how many went."""
    async with pool.connection() as conn:
        result = await conn.execute(_TRIM_SQL, {"now": now or datetime.now(UTC), "days": default_days})
    if result.rowcount:
        log.info("retention removed %d automation runs", result.rowcount)
    return result.rowcount
