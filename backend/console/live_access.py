"""What the console's live socket asks while it runs: who the session is now and which of its
devices that user may see, each time in a transaction of its own (a socket outlives any one
request's transaction), and the live feed it subscribes to."""

from __future__ import annotations

from backend.access.permissions import Permission as P
from backend.access.permissions import Principal
from backend.access.scope import Scope
from backend.accounts.runtime import AccountsRuntime
from backend.accounts.sessions import SessionService
from backend.audit.services import AuditService
from backend.console.devices import DeviceConsole
from backend.console.runtime import ConsoleRuntime
from backend.db.sql import fetch_all
from backend.devices.live import LiveFeed

VIEW = frozenset({P.DEVICES_VIEW, P.DEVICES_VIEW_OWN})
"""Either permission lets a user's socket see devices."""


class LiveAccess:
    """The live socket's checks (the ``live_access`` dependency of the console's pages)."""

    def __init__(self, accounts: AccountsRuntime, console: ConsoleRuntime) -> None:
        self._accounts = accounts
        self._console = console

    @property
    def feed(self) -> LiveFeed:
        return self._console.live

    async def check(self, session_token: str, ip: str | None, ids: list[int]) -> tuple[Principal, list[int]] | None:
        """The session's principal now and which of ``ids`` it may see; None when the session
        has ended or its role may see no device. Two queries, in one transaction."""
        async with self._accounts.db.session() as session:
            principal = await SessionService(session, self._accounts.session_lifetime).authenticate(session_token, ip)
            if principal is None or not VIEW & principal.permissions:
                return None
            devices = DeviceConsole(session, Scope(session, principal), AuditService(session), self._console)
            return principal, await devices.visible(ids)

    async def online(self, ids: list[int]) -> list[int]:
        """Which of ``ids`` are online now (for the socket's hello: a page drawn before a change
        whose notice came before the socket subscribed would otherwise show it stale)."""
        async with self._accounts.db.session() as session:
            rows = await fetch_all(
                session, "SELECT id FROM device WHERE id = ANY(:ids) AND online ORDER BY id", ids=ids
            )
        return [int(r["id"]) for r in rows]
