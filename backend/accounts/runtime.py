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


@dataclass(frozen=True)
class AccountsRuntime:
    """The database, the settings and the mailer (the ``accounts_runtime`` dependency)."""

    db: Database
    settings: Settings
    mailer: Mailer

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
