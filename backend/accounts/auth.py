"""Proving who one is: sign-in and sign-out, sign-up, password reset and change.

Answers never tell whether an e-mail address has an account: a wrong address and a wrong
password get the same error (and cost the same argon2 work), and sign-up and reset requests
are answered alike whatever the address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import ADMIN_ROLE, Principal
from backend.accounts.mail import Mailer
from backend.accounts.runtime import UserJoined
from backend.accounts.sessions import NewSession, SessionService
from backend.accounts.throttle import LoginThrottle
from backend.accounts.tokens import PASSWORD_RESET, SIGNUP, OneTimeTokens
from backend.accounts.users import USER_COLUMNS, UserInfo
from backend.accounts.values import check_email, check_name, check_password
from backend.audit.services import AuditService
from backend.db.sql import execute, fetch_one
from backend.errors import AuthenticationError, ConflictError, PermissionDeniedError, RateLimitedError, ValidationError
from backend.metrics import LOGIN_FAILURES
from backend.orgs.services import OrgService
from backend.security import hash_password, password_needs_rehash, verify_password
from backend.settings import Settings

WRONG_LOGIN = "wrong e-mail or password"


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown accounts against, so they cost the same work as known ones."""
    return hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class Visitor:
    """Where an unauthenticated request comes from."""

    ip: str | None
    user_agent: str = ""


class AuthService:
    """Sign-in and the flows around it, for one request."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        mailer: Mailer,
        audit: AuditService,
        visitor: Visitor,
        joined: UserJoined | None = None,
    ) -> None:
        self.joined = joined
        self.session = session
        self.settings = settings
        self.mailer = mailer
        self.audit = audit
        self.visitor = visitor
        self.sessions = SessionService(session, timedelta(hours=settings.session_lifetime_hours))
        self.throttle = LoginThrottle(
            session,
            settings.login_failures_per_account,
            settings.login_failures_per_address,
            settings.login_failure_window_seconds,
        )
        self.tokens = OneTimeTokens(session)

    async def login(self, email: str, password: str) -> tuple[UserInfo, NewSession]:
        """Open a session for the right e-mail and password; throttled per account and address
        (the attempt counts as a failure before the password is checked, see ``throttle``)."""
        try:
            await self.throttle.attempt(email, self.visitor.ip)
        except RateLimitedError:
            LOGIN_FAILURES.labels("throttled").inc()
            raise
        row = await fetch_one(
            self.session,
            f"SELECT {USER_COLUMNS}, u.password_hash FROM app_user u WHERE lower(u.email) = lower(:email)",
            email=email.strip(),
        )
        stored = row["password_hash"] if row else _dummy_hash()
        if not await asyncio.to_thread(verify_password, password, stored) or row is None:
            LOGIN_FAILURES.labels("wrong").inc()
            raise AuthenticationError(WRONG_LOGIN)  # the attempt stays counted
        await self.throttle.succeeded(email, self.visitor.ip)
        if row["status"] != "active":
            await self.session.commit()  # a right password is no failure, even of a suspended account
            raise AuthenticationError("this account is suspended; ask an administrator of your organization")
        if password_needs_rehash(stored):
            await execute(
                self.session,
                "UPDATE app_user SET password_hash = :h WHERE id = :id",
                id=row["id"],
                h=await asyncio.to_thread(hash_password, password),
            )
        await execute(self.session, "UPDATE app_user SET last_login_at = now() WHERE id = :id", id=row["id"])
        opened = await self.sessions.open(int(row["id"]), self.visitor.ip, self.visitor.user_agent)
        await self.audit.record(
            None, row["org_id"], "auth.login", "user", row["id"], ip=self.visitor.ip, actor_email=row["email"]
        )
        return dataclasses.replace(UserInfo.of(row), last_login_at=datetime.now(UTC)), opened

    async def logout(self, principal: Principal, everywhere: bool = False) -> int:
        """End this session, or every session of the user; how many were ended."""
        if everywhere:
            ended = await self.sessions.end_all(principal.user_id)
        else:
            assert principal.session_id is not None
            await self.sessions.end(principal.session_id)
            ended = 1
        await self.audit.record(
            principal,
            principal.org_id,
            "auth.logout_all" if everywhere else "auth.logout",
            "user",
            principal.user_id,
            sessions=ended,
        )
        return ended

    async def signup(self, email: str, name: str, password: str) -> None:
        """E-mail a confirmation link; the account and its organization are made when it is used."""
        if not self.settings.signup_enabled:
            raise PermissionDeniedError("sign-up is turned off on this server; ask an administrator for an invitation")
        email, name = check_email(email), check_name(name)
        check_password(password)
        if await self._user_by_email(email) is not None:
            await self.mailer.send(
                email,
                "Your openblynk account",
                "Someone (maybe you) tried to sign up with this address, which already has an "
                f"account. To choose a new password, go to {self._link('/password-reset')}\n",
            )
            return
        _id, token = await self.tokens.issue(
            SIGNUP,
            email,
            timedelta(hours=self.settings.signup_ttl_hours),
            name=name,
            password_hash=await asyncio.to_thread(hash_password, password),
        )
        await self.mailer.send(
            email,
            "Confirm your openblynk account",
            f"Hello {name or email},\n\nto finish signing up, open this link within "
            f"{self.settings.signup_ttl_hours:g} hours:\n\n"
            f"{self._link('/signup/confirm', token)}\n\nIf you did not sign up, ignore this e-mail.\n",
        )

    async def confirm_signup(self, token: str) -> UserInfo:
        """Make the account of a confirmed sign-up: an Admin of its own organization under the root."""
        row = await self.tokens.use(SIGNUP, token)
        if await self._user_by_email(row["email"]) is not None:
            raise ConflictError("an account with this e-mail address already exists")
        root = await OrgService(self.session).root()
        if root is None or self.settings.org_max_depth < 2:
            raise ValidationError("this server has no room for new organizations")
        org = await fetch_one(
            self.session,
            "INSERT INTO organization (parent_id, name, tz) VALUES (:root, :name, :tz) RETURNING id",
            root=root.id,
            name=row["email"].lower()[:100],
            tz=root.tz,
        )
        assert org is not None
        user = await fetch_one(
            self.session,
            """INSERT INTO app_user (org_id, email, name, password_hash, role_id)
            VALUES (:org, :email, :name, :hash, :role) RETURNING id""",
            org=org["id"],
            email=row["email"],
            name=row["name"],
            hash=row["password_hash"],
            role=ADMIN_ROLE,
        )
        assert user is not None
        await self.audit.record(
            None, org["id"], "auth.signup", "user", user["id"], ip=self.visitor.ip, actor_email=row["email"]
        )
        if self.joined is not None:
            self.joined(int(org["id"]), int(user["id"]))
        info = await self._user_by_email(row["email"])
        assert info is not None
        return info

    async def request_password_reset(self, email: str) -> None:
        """E-mail a reset link if the address belongs to an active account (answered alike either way)."""
        user = await self._user_by_email(check_email(email))
        if user is None or user.status != "active":
            return
        _id, token = await self.tokens.issue(
            PASSWORD_RESET, user.email, timedelta(minutes=self.settings.password_reset_ttl_minutes), user_id=user.id
        )
        await self.mailer.send(
            user.email,
            "Reset your openblynk password",
            f"To choose a new password, open this link within "
            f"{self.settings.password_reset_ttl_minutes:g} minutes:\n\n"
            f"{self._link('/password-reset', token)}\n\n"
            "If you did not ask for this, ignore this e-mail; your password stays as it is.\n",
        )
        await self.audit.record(
            None,
            user.org_id,
            "auth.password_reset_requested",
            "user",
            user.id,
            ip=self.visitor.ip,
            actor_email=user.email,
        )

    async def reset_password(self, token: str, password: str) -> None:
        """Set a new password with a reset link; every session of the user ends, and every other
        reset link of the user stops working."""
        check_password(password)
        link = await self.tokens.peek(PASSWORD_RESET, token)
        # one reset of a user at a time: a second link used at the same moment finds itself withdrawn
        await execute(self.session, "SELECT id FROM app_user WHERE id = :id FOR UPDATE", id=link["user_id"])
        row = await self.tokens.use(PASSWORD_RESET, token)
        await self._set_password(int(row["user_id"]), password)
        await self.sessions.end_all(int(row["user_id"]))
        user = await fetch_one(self.session, "SELECT org_id, email FROM app_user WHERE id = :id", id=row["user_id"])
        if user is not None:
            await self.audit.record(
                None,
                user["org_id"],
                "auth.password_reset",
                "user",
                row["user_id"],
                ip=self.visitor.ip,
                actor_email=user["email"],
            )

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        """Change one's own password; every other session of the user ends."""
        check_password(new)
        row = await fetch_one(self.session, "SELECT password_hash FROM app_user WHERE id = :id", id=principal.user_id)
        if row is None or not await asyncio.to_thread(verify_password, current, row["password_hash"]):
            raise ValidationError("the current password is wrong")
        await self._set_password(principal.user_id, new)
        await self.sessions.end_all(principal.user_id, keep=principal.session_id)
        await self.audit.record(principal, principal.org_id, "auth.password_change", "user", principal.user_id)

    async def _set_password(self, user_id: int, password: str) -> None:
        """Store a new password and withdraw the user's outstanding reset links."""
        await execute(
            self.session,
            "UPDATE app_user SET password_hash = :h WHERE id = :id",
            id=user_id,
            h=await asyncio.to_thread(hash_password, password),
        )
        await self.tokens.revoke_all(PASSWORD_RESET, user_id)

    async def _user_by_email(self, email: str) -> UserInfo | None:
        row = await fetch_one(
            self.session, f"SELECT {USER_COLUMNS} FROM app_user u WHERE lower(u.email) = lower(:e)", e=email
        )
        return UserInfo.of(row) if row else None

    def _link(self, path: str, token: str | None = None) -> str:
        base = (self.settings.public_url or f"http://localhost:{self.settings.http_port}").rstrip("/")
        return f"{base}{path}" + (f"?token={token}" if token else "")
