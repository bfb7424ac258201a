"""How long the delivery log is kept: as long as the devices' raw history (the same rule as the
automations' and devices' logs), and never more than :data:`KEEP_PER_WEBHOOK` entries of one
webhook. Run by the history maintenance job (``backend.server.container``)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

KEEP_PER_WEBHOOK = 1000
"""The most log entries one webhook keeps (its newest)."""

_OLD_SQL = "DELETE FROM webhook_delivery WHERE at < now() - make_interval(days => %s)"
_OVER_SQL = """DELETE FROM webhook_delivery d USING (
    SELECT webhook_id, (SELECT x.id FROM webhook_delivery x WHERE x.webhook_id = w.webhook_id
                        ORDER BY x.id DESC OFFSET %s LIMIT 1) AS last_dropped
    FROM (SELECT DISTINCT webhook_id FROM webhook_delivery) w
) cut WHERE d.webhook_id = cut.webhook_id AND d.id <= cut.last_dropped"""


async def trim_deliveries(pool: AsyncConnectionPool, keep_days: int, keep_per_webhook: int = KEEP_PER_WEBHOOK) -> int:
    """Delete entries older than ``keep_days`` and beyond the newest ``keep_per_webhook`` of each
    webhook; how many went."""
    async with pool.connection() as conn:
        old = await conn.execute(_OLD_SQL, (keep_days,))
        over = await conn.execute(_OVER_SQL, (keep_per_webhook,))
        return old.rowcount + over.rowcount
