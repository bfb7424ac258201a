"""Wrong claim codes, counted per claimer and per address in a sliding window (PostgreSQL, so
every app process counts the same attempts).

An attempt first takes a transaction-scoped advisory lock per key and checks the counts, so
attempts of one claimer run one after the other and none slips past the limit; a wrong code is
then counted and committed at once (the request's own transaction rolls back with its error).
Past the limit, claiming answers 429 with ``Retry-After``, right code or not.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.window import Key, WindowThrottle, on_session

LOCK_NAMESPACE = 0x0B1E_0017
"""First key of the claim throttle's advisory locks (the second is a hash of scope and key)."""


class ClaimThrottle:
    """The claim throttle on one database session (a :class:`~backend.db.window.WindowThrottle`
    on ``claim_failure`` counting failures only)."""

    def __init__(self, session: AsyncSession, per_user: int, per_address: int, window_seconds: int) -> None:
        self.session = session
        message = "too many wrong claim codes; try again in {wait} s"
        self.window = WindowThrottle(
            "claim_failure",
            LOCK_NAMESPACE,
            {"user": per_user, "address": per_address},
            window_seconds,
            {"user": message, "address": message},
        )

    async def guard(self, claimer: str, ip: str | None) -> None:
        """Refuse (``RateLimitedError``) if the claimer or the address is at its limit."""
        await self.window.guard(on_session(self.session), _keys(claimer, ip))

    async def failed(self, claimer: str, ip: str | None) -> None:
        """Count a wrong code, and commit it before the caller's error rolls anything back."""
        await self.window.count(on_session(self.session), _keys(claimer, ip))
        await self.session.commit()


def _keys(claimer: str, ip: str | None) -> list[Key]:
    keys: list[Key] = [("user", claimer)]
    if ip:
        keys.append(("address", ip))
    return keys
