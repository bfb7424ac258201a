"""Users of the organizations in a principal's scope: read, create with a password, rename,
change role, move to another organization, suspend, end sessions, delete.

Nobody may act on a user whose role can do more than their own, nor give a role that can do
more than their own: permissions never grow by delegation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission, Principal, expand
from backend.access.scope import Scope
from backend.accounts.roles import RoleService
from backend.accounts.runtime import UserJoined
from backend.accounts.sessions import SessionService
from backend.accounts.values import check_email, check_name, check_password
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_all, fetch_one, fetch_unique
from backend.errors import ConflictError, NotFoundError, PermissionDeniedError
from backend.security import hash_password

USER_COLUMNS = "u.id, u.org_id, u.email, u.name, u.role_id, u.status, u.created_at, u.last_login_at"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as the console shows them (never the password hash)."""

    id: int
    org_id: int
    email: str
    name: str
    role_id: int
    status: str
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, row: RowMapping) -> UserInfo:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


class UserService:
    """Users within one principal's scope."""

    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        audit: AuditService,
        sessions: SessionService,
        joined: UserJoined | None = None,
    ) -> None:
        self.joined = joined
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit
        self.sessions = sessions
        self.roles = RoleService(session, scope, audit)

    async def me(self) -> UserInfo:
        """The signed-in user."""
        return await self.get(self.principal.user_id)

    async def list(self, org_id: int | None, page: int, size: int) -> tuple[list[UserInfo], int]:
        """Users of one organization, or of the whole scope, by id."""
        if org_id is not None:
            await self.scope.require_org(org_id)
        orgs = [org_id] if org_id is not None else sorted(await self.scope.org_ids())
        rows = await fetch_all(
            self.session,
            f"SELECT {USER_COLUMNS}, count(*) OVER () AS total FROM app_user u "
            "WHERE u.org_id = ANY(:orgs) ORDER BY u.id LIMIT :size OFFSET :offset",
            orgs=orgs,
            size=size,
            offset=page * size,
        )
        return [UserInfo.of(r) for r in rows], int(rows[0]["total"]) if rows else 0

    async def get(self, user_id: int) -> UserInfo:
        """One user in scope."""
        row = await fetch_one(
            self.session,
            f"SELECT {USER_COLUMNS} FROM app_user u WHERE u.id = :id AND u.org_id = ANY(:orgs)",
            id=user_id,
            orgs=sorted(await self.scope.org_ids()),
        )
        if row is None:
            raise NotFoundError("user not found")
        return UserInfo.of(row)

    async def update(self, user_id: int, name: str | None, role_id: int | None) -> UserInfo:
        """Rename a user or give them another role."""
        user = await self._target(user_id, allow_self=role_id is None)
        new_name = check_name(name) if name is not None else user.name
        new_role = user.role_id
        if role_id is not None and role_id != user.role_id:
            await self.roles.assignable(role_id, user.org_id)
            new_role = role_id
        await execute(
            self.session,
            "UPDATE app_user SET name = :name, role_id = :role WHERE id = :id",
            id=user_id,
            name=new_name,
            role=new_role,
        )
        if new_role != user.role_id:
            await notify(self.session, Change("user", user_id))  # open console sockets check their devices
        await self.audit.record(
            self.principal,
            user.org_id,
            "user.update",
            "user",
            user_id,
            before={"name": user.name, "role_id": user.role_id},
            after={"name": new_name, "role_id": new_role},
        )
        return await self.get(user_id)

    async def create(self, org_id: int, email: str, name: str, password: str, role_id: int) -> UserInfo:
        """Make an active user of an organization in scope with a password (no e-mail is sent):
        the role may hold no permission the caller lacks, and the address must have no account."""
        await self.scope.require_org(org_id)
        email, name = check_email(email), check_name(name)
        check_password(password)
        await self.roles.assignable(role_id, org_id)
        taken = "an account with this e-mail address already exists"
        if await fetch_one(self.session, "SELECT 1 AS x FROM app_user WHERE lower(email) = lower(:e)", e=email):
            raise ConflictError(taken)
        digest = await asyncio.to_thread(hash_password, password)
        row = await fetch_unique(
            self.session,
            """INSERT INTO app_user (org_id, email, name, password_hash, role_id)
            VALUES (:org, :email, :name, :hash, :role) RETURNING id""",
            taken,  # the address may be taken meanwhile
            org=org_id,
            email=email,
            name=name,
            hash=digest,
            role=role_id,
        )
        await self.audit.record(self.principal, org_id, "user.create", "user", row["id"], email=email, role_id=role_id)
        if self.joined is not None:
            self.joined(org_id, int(row["id"]))
        return await self.get(int(row["id"]))

    async def transfer(self, user_id: int, org_id: int, role_id: int) -> UserInfo:
        """Move a user (never oneself, nor one whose role can do more than the caller) to another
        organization of the scope with a role given there. Their sessions keep working with the new
        organization at once; the devices they own stay where they are."""
        user = await self._target(user_id)
        await self.scope.require_org(org_id)
        await self.roles.assignable(role_id, org_id)
        await execute(
            self.session,
            "UPDATE app_user SET org_id = :org, role_id = :role WHERE id = :id",
            id=user_id,
            org=org_id,
            role=role_id,
        )
        await notify(self.session, Change("user", user_id))  # open console sockets check their devices
        after = {"org_id": org_id, "role_id": role_id}
        for org in sorted({user.org_id, org_id}):  # both organizations' logs show the move
            await self.audit.record(
                self.principal,
                org,
                "user.transfer",
                "user",
                user_id,
                email=user.email,
                before={"org_id": user.org_id, "role_id": user.role_id},
                after=after,
            )
        return await self.get(user_id)

    async def set_suspended(self, user_id: int, suspended: bool) -> UserInfo:
        """Suspend a user (their sessions stop working at once) or let them back in."""
        user = await self._target(user_id)
        await execute(
            self.session,
            "UPDATE app_user SET status = :status WHERE id = :id",
            id=user_id,
            status="suspended" if suspended else "active",
        )
        await notify(self.session, Change("user", user_id))  # open console sockets close at once
        if suspended:
            await self.sessions.end_all(user_id)
            await _stop_client_tokens(self.session, user_id)
        await self.audit.record(
            self.principal,
            user.org_id,
            "user.suspend" if suspended else "user.activate",
            "user",
            user_id,
            email=user.email,
        )
        return await self.get(user_id)

    async def end_sessions(self, user_id: int) -> int:
        """Sign a user out everywhere; how many sessions were ended."""
        user = await self._target(user_id, allow_self=True)
        ended = await self.sessions.end_all(user_id)
        await self.audit.record(self.principal, user.org_id, "user.logout_all", "user", user_id, sessions=ended)
        return ended

    async def delete(self, user_id: int) -> None:
        """Delete a user (their devices keep existing, without an owner)."""
        user = await self._target(user_id)
        await execute(self.session, "UPDATE account_token SET created_by = NULL WHERE created_by = :id", id=user_id)
        await _stop_client_tokens(self.session, user_id)  # their clients are refused from now on (no maker)
        await execute(self.session, "DELETE FROM app_user WHERE id = :id", id=user_id)
        await notify(self.session, Change("user", user_id))  # open console sockets close at once
        await self.audit.record(self.principal, user.org_id, "user.delete", "user", user_id, email=user.email)

    async def _target(self, user_id: int, *, allow_self: bool = False) -> UserInfo:
        user = await self.get(user_id)
        if user.id == self.principal.user_id and not allow_self:
            raise PermissionDeniedError("you cannot do this to your own account")
        row = await fetch_one(self.session, "SELECT permissions FROM role WHERE id = :id", id=user.role_id)
        theirs = expand(row["permissions"]) if row else frozenset[Permission]()
        if not theirs <= self.principal.permissions:
            raise PermissionDeniedError("this user's role has permissions yours does not")
        return user


async def _stop_client_tokens(session: AsyncSession, user_id: int) -> None:
    """Delete the platform API tokens of every client the user made (their maker is suspended or
    gone: the tokens must not work again if the maker is let back in; the secret may then ask anew)."""
    await execute(
        session,
        "DELETE FROM oauth_token WHERE client_id IN (SELECT id FROM oauth_client WHERE created_by = :id)",
        id=user_id,
    )
