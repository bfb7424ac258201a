"""Failed sign-ins, counted per account and per address in a sliding window (kept in
PostgreSQL, so every app replica counts the same attempts).

Past the limit, sign-in answers 429 with ``Retry-After``: the seconds until enough failures
have left the window. A successful sign-in clears the account's count, not the address's.

Check and count are one step, so concurrent attempts cannot race past the limit: an attempt
takes a transaction-scoped advisory lock per account and per address, checks the counts, and
records itself as a failure *before* its password is checked; the lock is released when that
short transaction commits. An attempt whose password turns out right takes its row back
(:meth:`LoginThrottle.succeeded`). So however many attempts arrive at once, from however many
app processes, at most ``limit`` passwords are checked in a window.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.sql import execute, fetch_one
from backend.errors import RateLimitedError

LOCK_NAMESPACE = 0x0B1E_0006
"""First key of the advisory locks of the throttle (the second is a hash of scope and key)."""


class LoginThrottle:
    """The sign-in throttle for one database session."""

    def __init__(self, session: AsyncSession, per_account: int, per_address: int, window_seconds: int) -> None:
        self.session = session
        self.limits = {"account": per_account, "address": per_address}
        self.window = window_seconds
        self._counted_at: datetime | None = None

    async def attempt(self, email: str, ip: str | None) -> None:
        """Refuse the attempt if the account or the address is at its limit; otherwise count it
        as a failure now and commit, before the password is checked."""
        keys = self._keys(email, ip)
        for scope, key in sorted(keys):  # one order everywhere: two attempts never wait on each other crosswise
            await execute(
                self.session,
                "SELECT pg_advisory_xact_lock(:ns, hashtext(:lock))",
                ns=LOCK_NAMESPACE,
                lock=f"{scope}:{key}",
            )
        for scope, key in keys:
            await self._check(scope, key)
        for scope, key in keys:
            await execute(
                self.session,
                "DELETE FROM login_failure WHERE scope = :scope AND key = :key "
                "AND at <= now() - make_interval(secs => :window)",
                scope=scope,
                key=key,
                window=self.window,
            )
            row = await fetch_one(
                self.session,
                "INSERT INTO login_failure (scope, key) VALUES (:scope, :key) RETURNING at",
                scope=scope,
                key=key,
            )
            assert row is not None
            self._counted_at = row["at"]
        await self.session.commit()  # releases the locks; the attempt counts from here on

    async def succeeded(self, email: str, ip: str | None) -> None:
        """The password was right: take this attempt back, and forget the account's failures."""
        await execute(
            self.session, "DELETE FROM login_failure WHERE scope = 'account' AND key = :key", key=email.strip().lower()
        )
        if ip and self._counted_at is not None:
            # rows are (scope, key, at) only: removing any one equal to ours is removing ours
            await execute(
                self.session,
                """DELETE FROM login_failure WHERE ctid = (SELECT ctid FROM login_failure
                WHERE scope = 'address' AND key = :key AND at = :at LIMIT 1)""",
                key=ip,
                at=self._counted_at,
            )
        self._counted_at = None

    async def _check(self, scope: str, key: str) -> None:
        limit = self.limits[scope]
        if limit <= 0:
            return
        row = await fetch_one(
            self.session,
            """
            SELECT at FROM login_failure WHERE scope = :scope AND key = :key
              AND at > now() - make_interval(secs => :window)
            ORDER BY at DESC OFFSET :skip LIMIT 1""",
            scope=scope,
            key=key,
            window=self.window,
            skip=limit - 1,
        )
        if row is not None:
            wait = (row["at"] - datetime.now(UTC)).total_seconds() + self.window
            what = "this account" if scope == "account" else "your address"
            raise RateLimitedError(
                f"too many failed sign-ins for {what}; try again in {int(wait) + 1} s", int(wait) + 1
            )

    @staticmethod
    def _keys(email: str, ip: str | None) -> list[tuple[str, str]]:
        keys = [("account", email.strip().lower())]
        if ip:
            keys.append(("address", ip))
        return keys
