"""Wrong claim codes, counted per claimer and per address in a sliding window (PostgreSQL, so
every app process counts the same attempts).

An attempt first takes a transaction-scoped advisory lock per key and checks the counts, so
attempts of one claimer run one after the other and none slips past the limit; a wrong code is
then counted and committed at once (the request's own transaction rolls back with its error).
Past the limit, claiming answers 429 with ``Retry-After``, right code or not.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.sql import execute, fetch_one
from backend.errors import RateLimitedError

LOCK_NAMESPACE = 0x0B1E_0017
"""First key of the claim throttle's advisory locks (the second is a hash of scope and key)."""


class ClaimThrottle:
    """The claim throttle on one database session."""

    def __init__(self, session: AsyncSession, per_user: int, per_address: int, window_seconds: int) -> None:
        self.session = session
        self.limits = {"user": per_user, "address": per_address}
        self.window = window_seconds

    async def guard(self, claimer: str, ip: str | None) -> None:
        """Refuse (``RateLimitedError``) if the claimer or the address is at its limit."""
        keys = _keys(claimer, ip)
        for scope, key in keys:  # one order everywhere
            await execute(
                self.session,
                "SELECT pg_advisory_xact_lock(:ns, hashtext(:lock))",
                ns=LOCK_NAMESPACE,
                lock=f"{scope}:{key}",
            )
        for scope, key in keys:
            await self._check(scope, key)

    async def failed(self, claimer: str, ip: str | None) -> None:
        """Count a wrong code, and commit it before the caller's error rolls anything back."""
        for scope, key in _keys(claimer, ip):
            await execute(
                self.session,
                "DELETE FROM claim_failure WHERE scope = :scope AND key = :key "
                "AND at <= now() - make_interval(secs => :window)",
                scope=scope,
                key=key,
                window=self.window,
            )
            await execute(
                self.session, "INSERT INTO claim_failure (scope, key) VALUES (:scope, :key)", scope=scope, key=key
            )
        await self.session.commit()

    async def _check(self, scope: str, key: str) -> None:
        limit = self.limits[scope]
        if limit <= 0:
            return
        row = await fetch_one(
            self.session,
            """SELECT at FROM claim_failure WHERE scope = :scope AND key = :key
               AND at > now() - make_interval(secs => :window) ORDER BY at DESC OFFSET :skip LIMIT 1""",
            scope=scope,
            key=key,
            window=self.window,
            skip=limit - 1,
        )
        if row is not None:
            wait = int((row["at"] - datetime.now(UTC)).total_seconds() + self.window) + 1
            raise RateLimitedError(f"too many wrong claim codes; try again in {wait} s", wait)


def _keys(claimer: str, ip: str | None) -> list[tuple[str, str]]:
    keys = [("user", claimer)]
    if ip:
        keys.append(("address", ip))
    return sorted(keys)
