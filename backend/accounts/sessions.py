"""Console sessions, kept server-side: the cookie holds a random token, the table its SHA-256.

A session ends when it expires, when its user signs out (or out everywhere), when an
administrator ends it, and at once when the user is suspended: every request looks the session
up together with its user's status, so nothing cached can outlive a suspension. Ending
sessions sends a ``user:<id>`` change notice, so open console WebSockets (which hold no
request) check theirs at once, in every process.

CSRF: every session has its own random CSRF token, given to the client at sign-in (in the JSON
answer and in a readable ``openblynk_csrf`` cookie). A state-changing request authenticated by
the session cookie must echo it in the ``X-CSRF-Token`` header; the server compares it with the
stored one (a synchronizer token: an attacker's page can make the browser send the cookie but
can neither read the token nor set the header cross-site). Litestar's own CSRF middleware was
not used because it guards every route of the app (the device API's POSTs and, next, the
bearer-token platform API too) while only cookie-authenticated requests need it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal, expand
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_one

SESSION_COOKIE = "openblynk_session"
CSRF_COOKIE = "openblynk_csrf"
CSRF_HEADER = "X-CSRF-Token"
LAST_SEEN_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> bytes:
    """What the database keeps of a session or link token."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just opened: the cookie value, its CSRF token and when it ends."""

    id: int
    token: str
    csrf_token: str
    expires_at: datetime


class SessionService:
    """Opening, checking and ending console sessions."""

    def __init__(self, session: AsyncSession, lifetime: timedelta) -> None:
        self.session = session
        self.lifetime = lifetime

    async def open(self, user_id: int, ip: str | None, user_agent: str) -> NewSession:
        """A new session for a user who has just proved who they are."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + self.lifetime
        row = await fetch_one(
            self.session,
            """
            INSERT INTO user_session (token_hash, csrf_token, user_id, ip, user_agent, expires_at)
            VALUES (:h, :csrf, :user, :ip, :ua, :exp) RETURNING id""",
            h=token_hash(token),
            csrf=csrf,
            user=user_id,
            ip=ip,
            ua=user_agent[:300],
            exp=expires,
        )
        assert row is not None
        return NewSession(int(row["id"]), token, csrf, expires)

    async def authenticate(self, token: str, ip: str | None) -> Principal | None:
        """The principal of a live session of an active user, or None."""
        row = await fetch_one(
            self.session,
            """
            SELECT s.id AS sid, s.csrf_token, s.last_seen_at, u.id, u.org_id, u.email, u.role_id, r.permissions
            FROM user_session s JOIN app_user u ON u.id = s.user_id JOIN role r ON r.id = u.role_id
            WHERE s.token_hash = :h AND s.expires_at > now() AND u.status = 'active'""",
            h=token_hash(token),
        )
        if row is None:
            return None
        if row["last_seen_at"] < datetime.now(UTC) - LAST_SEEN_EVERY:
            await execute(
                self.session,
                "UPDATE user_session SET last_seen_at = now(), ip = :ip WHERE id = :id",
                id=row["sid"],
                ip=ip,
            )
        return Principal(
            user_id=int(row["id"]),
            org_id=int(row["org_id"]),
            email=row["email"],
            role_id=int(row["role_id"]),
            permissions=expand(row["permissions"]),
            ip=ip,
            session_id=int(row["sid"]),
            csrf_token=row["csrf_token"],
        )

    async def end(self, session_id: int) -> None:
        """End one session (sign-out)."""
        row = await fetch_one(self.session, "DELETE FROM user_session WHERE id = :id RETURNING user_id", id=session_id)
        if row is not None:
            await notify(self.session, Change("user", int(row["user_id"])))

    async def end_all(self, user_id: int, keep: int | None = None) -> int:
        """End every session of a user (but ``keep``); how many were ended."""
        ended = await execute(
            self.session,
            "DELETE FROM user_session WHERE user_id = :user AND id IS DISTINCT FROM :keep",
            user=user_id,
            keep=keep,
        )
        if ended:
            await notify(self.session, Change("user", user_id))
        return ended

    async def purge_expired(self) -> int:
        """Delete sessions past their end (they already no longer work)."""
        return await execute(self.session, "DELETE FROM user_session WHERE expires_at <= now()")
