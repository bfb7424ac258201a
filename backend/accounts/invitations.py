"""Invitations: an e-mailed link that makes a user of an organization with a given role.

Only an address without an account can be invited (as on Blynk); an organization may send
``invitations_per_day`` of them per UTC day (25, Blynk's limit), withdrawn ones included, so
withdrawing does not buy more. A new invitation to the same address in the same organization
withdraws the earlier one.

A registration (the platform API's ``users/register``) is the same kind of link with one
difference: whoever follows it gets a new organization under the sender's, named after them,
and becomes its Admin (what ``users/create`` does, with the person choosing their own name and
password). It counts against the same daily limit and is accepted on the same page.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import ADMIN_ROLE, Permission
from backend.access.scope import Scope, ancestry
from backend.accounts.mail import Mailer
from backend.accounts.roles import RoleService
from backend.accounts.runtime import UserJoined
from backend.accounts.tokens import INVITATION, REGISTRATION, OneTimeTokens
from backend.accounts.users import USER_COLUMNS, UserInfo
from backend.accounts.values import check_email, check_name, check_password
from backend.audit.services import AuditService
from backend.db.sql import execute, fetch_all, fetch_one
from backend.errors import ConflictError, NotFoundError, PermissionDeniedError, RateLimitedError, ValidationError
from backend.orgs.tree import OrgTreeService
from backend.security import hash_password
from backend.settings import Settings

_COLUMNS = "id, org_id, email, name, role_id, created_at, expires_at"
_PENDING = "purpose = 'invitation' AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()"


@dataclass(frozen=True, slots=True)
class InvitationInfo:
    """A pending invitation (its link is only in the e-mail)."""

    id: int
    org_id: int
    email: str
    name: str
    role_id: int
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class InvitationPreview:
    """What an invitation link offers, shown before it is accepted."""

    email: str
    organization: str
    expires_at: datetime


class InvitationService:
    """Sending, listing and withdrawing invitations within a principal's scope."""

    def __init__(
        self, session: AsyncSession, scope: Scope, audit: AuditService, mailer: Mailer, settings: Settings
    ) -> None:
        self.session = session
        self.scope = scope
        self.principal = scope.principal
        self.audit = audit
        self.mailer = mailer
        self.settings = settings

    async def invite(self, org_id: int | None, email: str, role_id: int, name: str) -> InvitationInfo:
        """Invite an address without an account to an organization in scope, with a role."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        email, name = check_email(email), check_name(name)
        await RoleService(self.session, self.scope, self.audit).assignable(role_id, org)
        if await fetch_one(self.session, "SELECT 1 AS x FROM app_user WHERE lower(email) = lower(:e)", e=email):
            raise ConflictError("this address already has an account; only new addresses can be invited")
        await self._check_daily_limit(org)
        await execute(
            self.session,
            f"UPDATE account_token SET revoked_at = now() WHERE {_PENDING} "
            "AND org_id = :org AND lower(email) = lower(:e)",
            org=org,
            e=email,
        )
        invitation_id, token = await OneTimeTokens(self.session).issue(
            INVITATION,
            email,
            timedelta(hours=self.settings.invitation_ttl_hours),
            name=name,
            org_id=org,
            role_id=role_id,
            created_by=self.principal.user_id or None,
        )
        org_row = await fetch_one(self.session, "SELECT name FROM organization WHERE id = :id", id=org)
        base = (self.settings.public_url or f"http://localhost:{self.settings.http_port}").rstrip("/")
        await self.mailer.send(
            email,
            f"You are invited to {org_row['name'] if org_row else 'openblynk'}",
            f"{self.principal.email} invites you to the organization "
            f"{org_row['name'] if org_row else ''!s} on openblynk.\n\n"
            f"To accept, open this link within {self.settings.invitation_ttl_hours:g} hours:\n\n"
            f"{base}/invitations/accept?token={token}\n",
        )
        await self.audit.record(
            self.principal, org, "invitation.create", "invitation", invitation_id, email=email, role_id=role_id
        )
        return await self.get(invitation_id)

    async def register(self, email: str) -> int:
        """E-mail a registration link: its follower gets a new organization under the caller's
        and is its Admin. Only a caller who may create organizations and give the Admin role may
        send one; the id of the link."""
        org = self.principal.org_id
        await self.scope.require_org(org)
        email = check_email(email)
        if not self.principal.has(Permission.ORGS_CREATE):
            raise PermissionDeniedError(
                "your role lacks the permission orgs.create (a registration makes an organization for the new user)"
            )
        await RoleService(self.session, self.scope, self.audit).assignable(ADMIN_ROLE, org)
        tree = OrgTreeService(self.session, self.scope, self.audit, self.settings.org_max_depth)
        if await tree.depth(org) + 1 > self.settings.org_max_depth:
            raise ValidationError(
                f"organizations may be at most {self.settings.org_max_depth} levels deep; "
                "this one can have no client organizations"
            )
        if await fetch_one(self.session, "SELECT 1 AS x FROM app_user WHERE lower(email) = lower(:e)", e=email):
            raise ConflictError("this address already has an account; only new addresses can be registered")
        await self._check_daily_limit(org)
        await execute(
            self.session,
            "UPDATE account_token SET revoked_at = now() WHERE purpose = 'registration' "
            "AND used_at IS NULL AND revoked_at IS NULL AND org_id = :org "
            "AND lower(email) = lower(:e)",
            org=org,
            e=email,
        )
        link_id, token = await OneTimeTokens(self.session).issue(
            REGISTRATION,
            email,
            timedelta(hours=self.settings.invitation_ttl_hours),
            org_id=org,
            role_id=ADMIN_ROLE,
            created_by=self.principal.user_id or None,
        )
        org_row = await fetch_one(self.session, "SELECT name FROM organization WHERE id = :id", id=org)
        base = (self.settings.public_url or f"http://localhost:{self.settings.http_port}").rstrip("/")
        await self.mailer.send(
            email,
            "Create your openblynk account",
            f"{org_row['name'] if org_row else 'openblynk'} invites you to create your own "
            "organization on openblynk.\n\n"
            f"To choose your name and password, open this link within "
            f"{self.settings.invitation_ttl_hours:g} hours:\n\n"
            f"{base}/invitations/accept?token={token}\n",
        )
        await self.audit.record(self.principal, org, "registration.create", "registration", link_id, email=email)
        return link_id

    async def list(self, org_id: int | None) -> list[InvitationInfo]:
        """Pending invitations of an organization in scope (the caller's by default)."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        rows = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS} FROM account_token WHERE {_PENDING} AND org_id = :org ORDER BY id",
            org=org,
        )
        return [InvitationInfo(**r) for r in rows]

    async def get(self, invitation_id: int) -> InvitationInfo:
        """One pending invitation of an organization in scope."""
        row = await fetch_one(
            self.session,
            f"SELECT {_COLUMNS} FROM account_token WHERE {_PENDING} AND id = :id AND org_id = ANY(:orgs)",
            id=invitation_id,
            orgs=sorted(await self.scope.org_ids()),
        )
        if row is None:
            raise NotFoundError("invitation not found")
        return InvitationInfo(**row)

    async def withdraw(self, invitation_id: int) -> None:
        """Make a pending invitation's link stop working."""
        invitation = await self.get(invitation_id)
        await execute(self.session, "UPDATE account_token SET revoked_at = now() WHERE id = :id", id=invitation_id)
        await self.audit.record(
            self.principal,
            invitation.org_id,
            "invitation.withdraw",
            "invitation",
            invitation_id,
            email=invitation.email,
        )

    async def _check_daily_limit(self, org: int) -> None:
        row = await fetch_one(
            self.session,
            "SELECT count(*) AS n FROM account_token "
            "WHERE purpose IN ('invitation', 'registration') "
            "AND org_id = :org AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') "
            "AT TIME ZONE 'UTC'",
            org=org,
        )
        if row and int(row["n"]) >= self.settings.invitations_per_day:
            now = datetime.now(UTC)
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            raise RateLimitedError(
                f"this organization has sent its {self.settings.invitations_per_day} invitations for today (UTC)",
                int((midnight - now).total_seconds()) + 1,
            )


class InvitationLinks:
    """What an invitee does with their link (no session needed: the link is the proof)."""

    def __init__(
        self,
        session: AsyncSession,
        audit: AuditService,
        ip: str | None,
        max_depth: int = 4,
        joined: UserJoined | None = None,
    ) -> None:
        self.joined = joined
        self.session = session
        self.audit = audit
        self.ip = ip
        self.max_depth = max_depth
        self.tokens = OneTimeTokens(session)

    async def preview(self, token: str) -> InvitationPreview:
        """The address and organization a working link is for (a registration: the new one's place)."""
        row = await self.tokens.peek((INVITATION, REGISTRATION), token)
        where = await self._org_name(row)
        if row["purpose"] == REGISTRATION:
            where = f"your own organization under {where}"
        return InvitationPreview(row["email"], where, row["expires_at"])

    async def accept(self, token: str, name: str, password: str) -> UserInfo:
        """Use the link: the invitee's account, in the organization and role of the invitation
        (a registration: in a new organization under the sender's, as its Admin)."""
        name = check_name(name)
        check_password(password)
        row = await self.tokens.use((INVITATION, REGISTRATION), token)
        if await fetch_one(self.session, "SELECT 1 AS x FROM app_user WHERE lower(email) = lower(:e)", e=row["email"]):
            raise ConflictError("an account with this e-mail address already exists")
        org = row["org_id"]
        if row["purpose"] == REGISTRATION:
            org = await self._client_organization(org, name or row["email"])
        user = await fetch_one(
            self.session,
            f"""
            WITH u AS (INSERT INTO app_user (org_id, email, name, password_hash, role_id)
                       VALUES (:org, :email, :name, :hash, :role) RETURNING *)
            SELECT {USER_COLUMNS} FROM u""",
            org=org,
            email=row["email"],
            name=name or row["name"],
            hash=await asyncio.to_thread(hash_password, password),
            role=row["role_id"],
        )
        assert user is not None
        await self.audit.record(
            None,
            org,
            f"{row['purpose']}.accept",
            "user",
            user["id"],
            ip=self.ip,
            actor_email=row["email"],
            link_id=row["id"],
        )
        if self.joined is not None:
            self.joined(int(org), int(user["id"]))
        return UserInfo.of(user)

    async def _client_organization(self, parent: int, name: str) -> int:
        """A new organization under ``parent`` for a registering user, named after them (with a
        number when a sibling already has that name)."""
        if len(await ancestry(self.session, parent)) + 1 > self.max_depth:
            raise ValidationError(
                f"organizations may be at most {self.max_depth} levels deep; ask the sender for an invitation instead"
            )
        tz = await fetch_one(self.session, "SELECT tz FROM organization WHERE id = :id", id=parent)
        base = name.strip()[:90] or "Client"
        for n in range(1, 100):
            candidate = base if n == 1 else f"{base} ({n})"
            taken = await fetch_one(
                self.session,
                "SELECT 1 AS x FROM organization WHERE parent_id = :p AND name = :n",
                p=parent,
                n=candidate,
            )
            if taken is None:
                made = await fetch_one(
                    self.session,
                    "INSERT INTO organization (parent_id, name, tz) VALUES (:p, :n, :tz) RETURNING id",
                    p=parent,
                    n=candidate,
                    tz=tz["tz"] if tz else "UTC",
                )
                assert made is not None
                return int(made["id"])
        raise ConflictError(f"too many organizations named {base!r} under this one")

    async def _org_name(self, row: RowMapping) -> str:
        org = await fetch_one(self.session, "SELECT name FROM organization WHERE id = :id", id=row["org_id"])
        return str(org["name"]) if org else ""
