"""Failed sign-ins, counted per account and per address in a sliding window (kept in
PostgreSQL, so every app replica counts the same attempts).

Past the limit, sign-in answers 429 with ``Retry-After``: the seconds until enough failures
have left the window. A successful sign-in clears the account's count, not the address's.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.sql import execute, fetch_one
from backend.errors import RateLimitedError


class LoginThrottle:
    """The sign-in throttle for one database session."""

    def __init__(self, session: AsyncSession, per_account: int, per_address: int, window_seconds: int) -> None:
        self.session = session
        self.limits = {"account": per_account, "address": per_address}
        self.window = window_seconds

    async def check(self, email: str, ip: str | None) -> None:
        """Refuse the attempt if the account or the address is over its limit."""
        for scope, key in self._keys(email, ip):
            limit = self.limits[scope]
            if limit <= 0:
                continue
            row = await fetch_one(self.session, """
                SELECT at FROM login_failure WHERE scope = :scope AND key = :key
                  AND at > now() - make_interval(secs => :window)
                ORDER BY at DESC OFFSET :skip LIMIT 1""", scope=scope, key=key, window=self.window, skip=limit - 1)
            if row is not None:
                wait = (row["at"] - datetime.now(timezone.utc)).total_seconds() + self.window
                what = "this account" if scope == "account" else "your address"
                raise RateLimitedError(f"too many failed sign-ins for {what}; try again in {int(wait) + 1} s",
                                       int(wait) + 1)

    async def failed(self, email: str, ip: str | None) -> None:
        """Count a failed attempt (and forget those that have left the window)."""
        for scope, key in self._keys(email, ip):
            await execute(self.session, "DELETE FROM login_failure WHERE scope = :scope AND key = :key "
                                        "AND at <= now() - make_interval(secs => :window)",
                          scope=scope, key=key, window=self.window)
            await execute(self.session, "INSERT INTO login_failure (scope, key) VALUES (:scope, :key)",
                          scope=scope, key=key)

    async def succeeded(self, email: str) -> None:
        """Forget the account's failures after a good sign-in."""
        await execute(self.session, "DELETE FROM login_failure WHERE scope = 'account' AND key = :key",
                      key=email.strip().lower())

    @staticmethod
    def _keys(email: str, ip: str | None) -> list[tuple[str, str]]:
        keys = [("account", email.strip().lower())]
        if ip:
            keys.append(("address", ip))
        return keys
