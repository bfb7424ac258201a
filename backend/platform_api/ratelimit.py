"""The platform API's rate limit: requests per organization per minute (Blynk: 10,000).

One counter row per organization in PostgreSQL, so every app process counts together. A
window starts with the first request after the previous one ended and lasts 60 s; past the
limit a request is refused with the seconds left in the window (``Retry-After``).
"""

from __future__ import annotations

import math

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.sql import fetch_one
from backend.errors import RateLimitedError

WINDOW_SECONDS = 60
_COUNT_SQL = """
INSERT INTO api_rate AS r (org_id, window_start, count) VALUES (:org, now(), 1)
ON CONFLICT (org_id) DO UPDATE SET
    count = CASE WHEN r.window_start > now() - make_interval(secs => :window) THEN r.count + 1 ELSE 1 END,
    window_start = CASE WHEN r.window_start > now() - make_interval(secs => :window) THEN r.window_start ELSE now() END
RETURNING count, extract(epoch FROM r.window_start + make_interval(secs => :window) - now()) AS left_s
"""


async def count_request(session: AsyncSession, org_id: int, per_minute: int) -> None:
    """Count one request of ``org_id``; raise RateLimitedError past ``per_minute`` (0: no limit)."""
    if per_minute <= 0:
        return
    row = await fetch_one(session, _COUNT_SQL, org=org_id, window=WINDOW_SECONDS)
    assert row is not None
    if int(row["count"]) > per_minute:
        raise RateLimitedError(
            f"Too many requests: this organization may make {per_minute} platform API requests a minute.",
            math.ceil(float(row["left_s"])),
        )
