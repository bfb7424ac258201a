"""Forgetting old notifications: a scheduler job (one process runs it) deletes notifications
older than ``OPENBLYNK_NOTIFICATION_RETENTION_DAYS`` and the hourly e-mail counts of past
hours, so the tables stay as large as the retention says however many events notify."""

from __future__ import annotations

import logging

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

_NOTIFICATIONS_SQL = "DELETE FROM notification WHERE created_at < now() - make_interval(days => %s)"
_HOURS_SQL = "DELETE FROM notification_email_hour WHERE hour < date_trunc('hour', now())"


async def clean_notifications(pool: AsyncConnectionPool, retention_days: int) -> int:
    """Delete notifications older than ``retention_days`` and past hours' e-mail counts; how
    many notifications went."""
    async with pool.connection() as conn:
        deleted = (await conn.execute(_NOTIFICATIONS_SQL, (retention_days,))).rowcount
        await conn.execute(_HOURS_SQL)
    if deleted:
        log.info("deleted %s notifications older than %s days", deleted, retention_days)
    return max(deleted, 0)
