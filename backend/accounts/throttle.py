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

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.window import Key, WindowThrottle, on_session

LOCK_NAMESPACE = 0x0B1E_0006
"""First key of the advisory locks of the throttle (the second is a hash of scope and key)."""


class LoginThrottle:
    """The sign-in throttle for one database session (a :class:`~backend.db.window.WindowThrottle`
    on ``login_failure`` counting every attempt)."""

    def __init__(self, session: AsyncSession, per_account: int, per_address: int, window_seconds: int) -> None:
        self.session = session
        self.window = WindowThrottle(
            "login_failure",
            LOCK_NAMESPACE,
            {"account": per_account, "address": per_address},
            window_seconds,
            {
                "account": "too many failed sign-ins for this account; try again in {wait} s",
                "address": "too many failed sign-ins for your address; try again in {wait} s",
            },
        )
        self._counted_at: datetime | None = None

    async def attempt(self, email: str, ip: str | None) -> None:
        """Refuse the attempt if the account or the address is at its limit; otherwise count it
        as a failure now and commit, before the password is checked."""
        self._counted_at = await self.window.attempt(on_session(self.session), self._keys(email, ip))
        await self.session.commit()  # releases the locks; the attempt counts from here on

    async def succeeded(self, email: str, ip: str | None) -> None:
        """The password was right: take this attempt back, and forget the account's failures."""
        sql = on_session(self.session)
        await self.window.forget(sql, ("account", email.strip().lower()))
        if ip and self._counted_at is not None:
            await self.window.take_back(sql, ("address", ip), self._counted_at)
        self._counted_at = None

    @staticmethod
    def _keys(email: str, ip: str | None) -> list[Key]:
        keys: list[Key] = [("account", email.strip().lower())]
        if ip:
            keys.append(("address", ip))
        return keys
