"""Housekeeping of the sign-in tables, run hourly by the scheduler leader ("accounts-cleanup").

Everything removed here has already stopped working: sessions and API tokens past their end,
failed sign-ins older than the throttling window, and e-mailed links (sign-up, password reset,
invitations) a week after they expired. Without this the tables only grow: sessions were
purged at start-up only, and failures only for the keys that failed again.
"""

from __future__ import annotations

import logging

from backend.db.engine import Database
from backend.db.sql import execute

log = logging.getLogger(__name__)

LINK_KEEP_DAYS = 7
"""Days an expired, used or withdrawn link is kept (a late click still says "expired")."""


async def clean_accounts(db: Database, failure_window_seconds: int) -> dict[str, int]:
    """Delete what no longer works; how many rows of each kind went."""
    async with db.session() as session:
        removed = {
            "sessions": await execute(session, "DELETE FROM user_session WHERE expires_at <= now()"),
            "api_tokens": await execute(
                session, "DELETE FROM oauth_token WHERE expires_at <= now() - interval '1 day'"
            ),
            "login_failures": await execute(
                session,
                "DELETE FROM login_failure WHERE at <= now() - make_interval(secs => :window)",
                window=failure_window_seconds,
            ),
            "links": await execute(
                session,
                "DELETE FROM account_token WHERE expires_at < now() - make_interval(days => :days)",
                days=LINK_KEEP_DAYS,
            ),
        }
    if any(removed.values()):
        log.info("accounts cleanup removed %s", ", ".join(f"{n} {k}" for k, n in removed.items() if n))
    return removed
