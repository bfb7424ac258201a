"""Links sent by e-mail (sign-up, password reset, invitation, registration): random, stored as a SHA-256,
working once and only until they expire. Using one is a single ``UPDATE ... RETURNING``, so two
requests racing with the same link cannot both succeed."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.accounts.sessions import token_hash
from backend.db.sql import execute, fetch_one
from backend.errors import ValidationError

SIGNUP, PASSWORD_RESET, INVITATION, REGISTRATION = "signup", "password_reset", "invitation", "registration"
_FIELDS = ("name", "password_hash", "user_id", "org_id", "role_id", "created_by")


class OneTimeTokens:
    """Issue and use one-time links."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def issue(self, purpose: str, email: str, ttl: timedelta, **fields: Any) -> tuple[int, str]:
        """A new link token for ``purpose``; its row id and the token (shown only in the e-mail)."""
        unknown = set(fields) - set(_FIELDS)
        assert not unknown, unknown
        token = secrets.token_urlsafe(32)
        values = {name: fields.get(name) for name in _FIELDS}
        values["name"] = values["name"] or ""
        row = await fetch_one(
            self.session,
            f"""
            INSERT INTO account_token (token_hash, purpose, email, expires_at, {", ".join(_FIELDS)})
            VALUES (:h, :purpose, :email, now() + make_interval(secs => :ttl), {", ".join(":" + f for f in _FIELDS)})
            RETURNING id""",
            h=token_hash(token),
            purpose=purpose,
            email=email,
            ttl=ttl.total_seconds(),
            **values,
        )
        assert row is not None
        return int(row["id"]), token

    async def peek(self, purpose: str | tuple[str, ...], token: str) -> RowMapping:
        """The row of a link (of ``purpose``, or one of them) that still works, without using it."""
        row = await fetch_one(
            self.session,
            "SELECT *, expires_at > now() AS live FROM account_token WHERE token_hash = :h AND purpose = ANY(:p)",
            h=token_hash(token),
            p=_purposes(purpose),
        )
        self._check(row)
        assert row is not None
        return row

    async def use(self, purpose: str | tuple[str, ...], token: str) -> RowMapping:
        """Use a link: its row, or a ``ValidationError`` saying why it no longer works."""
        row = await fetch_one(
            self.session,
            """
            UPDATE account_token SET used_at = now()
            WHERE token_hash = :h AND purpose = ANY(:p) AND used_at IS NULL AND revoked_at IS NULL
              AND expires_at > now()
            RETURNING *""",
            h=token_hash(token),
            p=_purposes(purpose),
        )
        if row is None:
            await self.peek(purpose, token)  # raises with the reason
            raise ValidationError("this link is not valid")
        return row

    async def revoke_all(self, purpose: str, user_id: int) -> int:
        """Withdraw every outstanding link of ``purpose`` for a user; how many were withdrawn."""
        return await execute(
            self.session,
            """
            UPDATE account_token SET revoked_at = now()
            WHERE purpose = :p AND user_id = :user AND used_at IS NULL AND revoked_at IS NULL""",
            p=purpose,
            user=user_id,
        )

    @staticmethod
    def _check(row: RowMapping | None) -> None:
        if row is None:
            raise ValidationError("this link is not valid")
        if row["used_at"] is not None:
            raise ValidationError("this link has already been used")
        if row["revoked_at"] is not None:
            raise ValidationError("this link was withdrawn")
        if not row["live"]:
            raise ValidationError("this link has expired")


def _purposes(purpose: str | tuple[str, ...]) -> list[str]:
    return [purpose] if isinstance(purpose, str) else list(purpose)
