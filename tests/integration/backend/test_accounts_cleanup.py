"""The hourly accounts cleanup removes only what has stopped working."""

from __future__ import annotations

import psycopg

from backend.accounts.cleanup import LINK_KEEP_DAYS, clean_accounts
from backend.db.engine import Database
from backend.orgs.services import OrgService

WINDOW = 900


async def test_cleanup_removes_only_ended_sessions_tokens_failures_and_links(fresh_db: str) -> None:
    async with Database(fresh_db) as db:
        async with db.session() as session:
            root = await OrgService(session).ensure_root("admin@example.com", "a-long-password")
    with psycopg.connect(fresh_db) as conn:
        user = conn.execute("SELECT id FROM app_user").fetchone()[0]  # type: ignore[index]
        for n, ends in enumerate(("-1 minute", "+1 hour")):
            conn.execute(
                "INSERT INTO user_session (token_hash, csrf_token, user_id, expires_at) "
                "VALUES (%s, 'c', %s, now() + %s::interval)",
                (bytes([n]), user, ends),
            )
        client = conn.execute(
            "INSERT INTO oauth_client (client_id, secret_hash, org_id, name, permissions) "
            "VALUES ('oa2', '\\x00', %s, 'c', '{}') RETURNING id",
            (root.id,),
        ).fetchone()[0]  # type: ignore[index]
        for n, ends in enumerate(("-2 days", "-1 hour", "+5 minutes")):  # a day's grace for late refreshes
            conn.execute(
                "INSERT INTO oauth_token (client_id, kind, token_hash, expires_at) "
                "VALUES (%s, 'access', %s, now() + %s::interval)",
                (client, bytes([n]), ends),
            )
        for ago in (WINDOW + 60, WINDOW - 60):
            conn.execute(
                "INSERT INTO login_failure (scope, key, at) "
                "VALUES ('address', '10.0.0.1', now() - make_interval(secs => %s))",
                (ago,),
            )
        for n, expired_days_ago in enumerate((LINK_KEEP_DAYS + 1, LINK_KEEP_DAYS - 1, -2)):
            conn.execute(
                "INSERT INTO account_token (token_hash, purpose, email, expires_at) "
                "VALUES (%s, 'signup', 'x@example.com', now() - make_interval(days => %s))",
                (bytes([n]), expired_days_ago),
            )
    async with Database(fresh_db) as db:
        removed = await clean_accounts(db, WINDOW)
        assert removed == {"sessions": 1, "api_tokens": 1, "login_failures": 1, "links": 1}
        assert await clean_accounts(db, WINDOW) == {"sessions": 0, "api_tokens": 0, "login_failures": 0, "links": 0}
    with psycopg.connect(fresh_db) as conn:
        left = [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("user_session", "oauth_token", "login_failure", "account_token")
        ]
    assert left == [1, 2, 1, 2]
