"""Roles: Blynk's built-ins (1 Admin, 2 Staff, 3 User) and each organization's custom ones.

A custom role belongs to one organization and is given to that organization's users. A role
can be created or changed only with permissions the caller has, and given only by a caller who
has all of its permissions. A custom role holding a permission the caller lacks can be neither
changed nor deleted by them: its holders are users the caller may not act on (the rule of
``users``), and changing the role would change those users.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import BUILTIN_ROLES, Principal, expand, parse
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_all, fetch_one, fetch_unique
from backend.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError

MAX_CUSTOM_ROLES = 9
"""Custom roles per organization (Blynk Enterprise's limit)."""


@dataclass(frozen=True, slots=True)
class RoleInfo:
    """A role and the permissions it grants."""

    id: int
    org_id: int | None
    name: str
    permissions: list[str]
    builtin: bool

    @classmethod
    def of(cls, row: RowMapping) -> RoleInfo:
        return cls(
            int(row["id"]),
            row["org_id"],
            row["name"],
            sorted(p.value for p in expand(row["permissions"])),
            row["org_id"] is None,
        )


class RoleService:
    """Roles visible to one principal: the built-ins and the custom roles of their scope."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit

    async def list(self, org_id: int | None) -> list[RoleInfo]:
        """Built-in roles and the custom roles of one organization (the caller's by default)."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        rows = await fetch_all(
            self.session,
            "SELECT id, org_id, name, permissions FROM role WHERE org_id IS NULL OR org_id = :org ORDER BY id",
            org=org,
        )
        return [RoleInfo.of(r) for r in rows]

    async def get(self, role_id: int) -> RoleInfo:
        """One built-in role, or a custom role of an organization in scope."""
        row = await fetch_one(
            self.session,
            "SELECT id, org_id, name, permissions FROM role WHERE id = :id AND (org_id IS NULL OR org_id = ANY(:orgs))",
            id=role_id,
            orgs=sorted(await self.scope.org_ids()),
        )
        if row is None:
            raise NotFoundError("role not found")
        return RoleInfo.of(row)

    async def create(self, org_id: int | None, name: str, permissions: Iterable[str]) -> RoleInfo:
        """A custom role of an organization in scope."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        name, granted = _checked(self.principal, name, permissions)
        count = await fetch_one(self.session, "SELECT count(*) AS n FROM role WHERE org_id = :org", org=org)
        if count and int(count["n"]) >= MAX_CUSTOM_ROLES:
            raise ValidationError(f"an organization may have at most {MAX_CUSTOM_ROLES} custom roles")
        row = await self._write(
            "INSERT INTO role (id, org_id, name, permissions) "
            "VALUES (nextval('role_custom_id_seq'), :org, :name, :perms) "
            "RETURNING id, org_id, name, permissions",
            name,
            org=org,
            name=name,
            perms=granted,
        )
        role = RoleInfo.of(row)
        await self.audit.record(self.principal, org, "role.create", "role", role.id, name=name, permissions=granted)
        return role

    async def update(self, role_id: int, name: str | None, permissions: Iterable[str] | None) -> RoleInfo:
        """Rename a custom role or change its permissions (its users have the new ones at once)."""
        role = await self._custom(role_id)
        new_name, granted = _checked(
            self.principal,
            name if name is not None else role.name,
            permissions if permissions is not None else role.permissions,
        )
        row = await self._write(
            "UPDATE role SET name = :name, permissions = :perms WHERE id = :id RETURNING id, org_id, name, permissions",
            new_name,
            id=role_id,
            name=new_name,
            perms=granted,
        )
        await notify(self.session, Change("role", role_id))  # its users' open console sockets check their devices
        await self.audit.record(
            self.principal,
            role.org_id,
            "role.update",
            "role",
            role_id,
            before={"name": role.name, "permissions": role.permissions},
            after={"name": new_name, "permissions": granted},
        )
        return RoleInfo.of(row)

    async def delete(self, role_id: int) -> None:
        """Delete a custom role nobody has and no pending invitation gives."""
        role = await self._custom(role_id)
        used = await fetch_one(
            self.session,
            """SELECT EXISTS (SELECT 1 FROM app_user WHERE role_id = :id)
            OR EXISTS (SELECT 1 FROM account_token WHERE role_id = :id AND used_at IS NULL AND revoked_at IS NULL
                       AND expires_at > now()) AS used""",
            id=role_id,
        )
        if used and used["used"]:
            raise ConflictError("this role is given to users or by pending invitations; change those first")
        await execute(self.session, "DELETE FROM account_token WHERE role_id = :id", id=role_id)
        await execute(self.session, "DELETE FROM role WHERE id = :id", id=role_id)
        await self.audit.record(self.principal, role.org_id, "role.delete", "role", role_id, name=role.name)

    async def assignable(self, role_id: int, org_id: int) -> RoleInfo:
        """A role the caller may give to a user of ``org_id``: built-in or that organization's own,
        with no permission the caller lacks."""
        role = await self.get(role_id)
        if role.org_id is not None and role.org_id != org_id:
            raise ValidationError("a custom role can only be given to users of its own organization")
        if not expand(role.permissions) <= self.principal.permissions:
            raise PermissionDeniedError("you cannot give a role with permissions you do not have")
        return role

    async def _custom(self, role_id: int) -> RoleInfo:
        """A custom role the caller may change or delete: none of its permissions is beyond theirs."""
        role = await self.get(role_id)
        if role.builtin:
            raise PermissionDeniedError("built-in roles cannot be changed or deleted")
        beyond = expand(role.permissions) - self.principal.permissions
        if beyond:
            raise PermissionDeniedError(
                "this role has permissions yours does not ("
                + ", ".join(sorted(beyond))
                + "); only someone who holds them all may change or delete it"
            )
        return role

    async def _write(self, sql: str, name: str, /, **params: object) -> RowMapping:
        return await fetch_unique(
            self.session, sql, f"a role named {name!r} already exists in this organization", **params
        )


def _checked(principal: Principal, name: str, permissions: Iterable[str]) -> tuple[str, list[str]]:
    """A valid role name and the sorted permission names, all held by ``principal``."""
    name = name.strip()
    if not 1 <= len(name) <= 50:
        raise ValidationError("a role name must have 1 to 50 characters")
    if name.lower() in {n.lower() for n, _ in BUILTIN_ROLES.values()}:
        raise ConflictError(f"{name!r} is the name of a built-in role")
    granted = parse(permissions)
    missing = granted - principal.permissions
    if missing:
        raise PermissionDeniedError(
            "you cannot grant permissions you do not have: " + ", ".join(sorted(p.value for p in missing))
        )
    return name, sorted(p.value for p in granted)
