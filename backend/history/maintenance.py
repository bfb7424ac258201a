"""The history maintenance job: partitions ahead, retention behind."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from psycopg_pool import AsyncConnectionPool

from backend.history.partitions import HISTORY, HOUR, MINUTE, drop_expired, ensure_partitions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    """How long raw points and rollups are kept."""

    raw_days: int = 30
    rollup_days: int = 365

    def __post_init__(self) -> None:
        if self.raw_days < 1 or self.rollup_days < 1:
            raise ValueError("retention must be at least one day")


async def maintain(pool: AsyncConnectionPool, retention: Retention, days_ahead: int = 3) -> dict[str, list[str]]:
    """Create partitions ``days_ahead`` days ahead and drop what retention lets go."""
    now = datetime.now(timezone.utc)
    created = await ensure_partitions(pool, days_back=1, days_ahead=days_ahead)
    dropped = await drop_expired(pool, HISTORY, now - timedelta(days=retention.raw_days))
    for table in (MINUTE, HOUR):
        dropped += await drop_expired(pool, table, now - timedelta(days=retention.rollup_days))
    if created or dropped:
        log.info("history maintenance: created %s; dropped %s", created or "nothing", dropped or "nothing")
    return {"created": created, "dropped": dropped}
