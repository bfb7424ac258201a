"""Blynk's rate limit of a webhook, counted across every app process: at most N requests in any
60 seconds, and the refusals it causes logged at most once in :data:`REFUSAL_LOG_S`.

The requests are counted in PostgreSQL (``webhook_request``) by a
:class:`~backend.db.window.WindowThrottle` counting every attempt: a request takes an advisory
lock on its webhook, counts the requests of the last 60 seconds and, below the limit, records
itself, in one short transaction. So however many app processes send one webhook at once,
together they send at most N in any 60 seconds (by PostgreSQL's clock). Only the refusal log's
pacing is per process (a refusal is logged at most once in :data:`REFUSAL_LOG_S` by each).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

from backend.db.window import WindowThrottle, on_connection
from backend.errors import RateLimitedError

REFUSAL_LOG_S = 10.0
"""Refusals by the rate limit are logged at most once in this many seconds per webhook."""
LOCK_NAMESPACE = 0x0B1E_0013
"""First key of the webhook limit's advisory locks (the second is a hash of the webhook's id)."""
WINDOW_SECONDS = 60


class MinuteWindow:
    """At most ``limit`` requests per webhook in any 60 seconds, counted in ``pool``'s database.
    ``clock`` (epoch seconds; tests move it) replaces PostgreSQL's clock for the window when
    given, and paces the refusal log (by default ``time.monotonic``)."""

    def __init__(self, pool: AsyncConnectionPool, limit: int, clock: Callable[[], float] | None = None) -> None:
        self.pool = pool
        self.limit = limit
        self.clock = clock or time.monotonic
        self._throttle = WindowThrottle(
            "webhook_request", LOCK_NAMESPACE, {"webhook": limit}, WINDOW_SECONDS, {"webhook": ""}, clock=clock
        )
        self._refusal_logged: dict[int, float] = {}

    async def take(self, key: int) -> bool:
        """Count one request of webhook ``key``; False (nothing counted) when its minute is full."""
        async with self.pool.connection() as conn, conn.transaction():
            try:
                await self._throttle.attempt(on_connection(conn), [("webhook", str(key))])
            except RateLimitedError:
                return False
        return True

    def refusal_to_log(self, key: int) -> bool:
        """Whether a refusal of ``key`` is to be logged: the first in :data:`REFUSAL_LOG_S`."""
        now = self.clock()
        last = self._refusal_logged.get(key)
        if last is not None and now - last < REFUSAL_LOG_S:
            return False
        self._refusal_logged[key] = now
        return True
