"""What the accounts services need from the running app, built once at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from litestar import Litestar

from backend.accounts.mail import Mailer
from backend.accounts.sessions import SessionService
from backend.db.engine import Database
from backend.settings import Settings

UserJoined = Callable[[int, int], None]
"""Told ``(org_id, user_id)`` when a user joins an organization (webhooks' "user added")."""


def _nobody(org_id: int, user_id: int) -> None:
    return None


@dataclass(frozen=True)
class AccountsRuntime:
    """The database, the settings and the mailer (the ``accounts_runtime`` dependency), and who
    hears of new users."""

    db: Database
    settings: Settings
    mailer: Mailer
    user_joined: UserJoined = _nobody
    """Called right after a user was added (by an admin, a sign-up or an accepted link), inside
    the request's transaction: a listener must not expect to read the user before it commits."""

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.session_lifetime_hours)

    async def purge_ended_sessions(self) -> None:
        """Delete the sessions that have ended (at start-up)."""
        async with self.db.session() as session:
            await SessionService(session, self.session_lifetime).purge_expired()


AccountsOf = Callable[[Litestar], AccountsRuntime]
"""How a middleware finds the running app's :class:`AccountsRuntime` (the top supplies it: a
middleware gets no dependencies)."""
