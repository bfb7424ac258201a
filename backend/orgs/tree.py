"""The organization tree as a signed-in user sees it, and changes to the tree.

Every read and change is limited to the caller's scope (``backend.access.scope``): an
organization outside it is answered as one that does not exist.

The root is level 1; no organization may sit deeper than ``max_depth`` (Blynk's 4 by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope, ancestry, subtree
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_all, fetch_one, fetch_unique
from backend.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError

_COLUMNS = "id, parent_id, name, tz, created_at"


@dataclass(frozen=True, slots=True)
class OrgInfo:
    """An organization as its users see it."""

    id: int
    parent_id: int | None
    name: str
    tz: str
    created_at: datetime


class OrgTreeService:
    """Reading and changing the organization tree within one principal's scope."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, max_depth: int) -> None:
        self.session = session
        self.scope = scope
        self.principal = scope.principal
        self.audit = audit
        self.max_depth = max_depth

    async def list(self) -> list[OrgInfo]:
        """Every organization in scope, by id."""
        rows = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS} FROM organization WHERE id = ANY(:ids) ORDER BY id",
            ids=sorted(await self.scope.org_ids()),
        )
        return [OrgInfo(**r) for r in rows]

    async def get(self, org_id: int) -> OrgInfo:
        """One organization in scope."""
        await self.scope.require_org(org_id)
        row = await fetch_one(self.session, f"SELECT {_COLUMNS} FROM organization WHERE id = :id", id=org_id)
        if row is None:
            raise NotFoundError("organization not found")
        return OrgInfo(**row)

    async def create(self, name: str, parent_id: int | None, tz: str | None) -> OrgInfo:
        """A new sub-organization under ``parent_id`` (the caller's own organization by default)."""
        parent = await self.get(parent_id if parent_id is not None else self.principal.org_id)
        name = _check_name(name)
        if await self.depth(parent.id) + 1 > self.max_depth:
            raise ValidationError(f"organizations may be at most {self.max_depth} levels deep")
        row = await self._write(
            f"INSERT INTO organization (parent_id, name, tz) VALUES (:parent, :name, :tz) RETURNING {_COLUMNS}",
            name,
            parent=parent.id,
            name=name,
            tz=_check_tz(tz or parent.tz),
        )
        org = OrgInfo(**row)
        self.scope.forget()  # the new organization is in scope from now on, within this request too
        await self.audit.record(
            self.principal, org.id, "org.create", "organization", org.id, name=org.name, parent_id=parent.id
        )
        return org

    async def update(self, org_id: int, name: str | None, tz: str | None) -> OrgInfo:
        """Rename an organization or change its time zone."""
        org = await self.get(org_id)
        new_name = _check_name(name) if name is not None else org.name
        new_tz = _check_tz(tz) if tz is not None else org.tz
        row = await self._write(
            f"UPDATE organization SET name = :name, tz = :tz WHERE id = :id RETURNING {_COLUMNS}",
            new_name,
            id=org_id,
            name=new_name,
            tz=new_tz,
        )
        await self.audit.record(
            self.principal,
            org_id,
            "org.update",
            "organization",
            org_id,
            before={"name": org.name, "tz": org.tz},
            after={"name": new_name, "tz": new_tz},
        )
        return OrgInfo(**row)

    async def delete(self, org_id: int) -> None:
        """Delete an empty sub-organization (no sub-organizations, users, devices or templates)."""
        org = await self.get(org_id)
        if org_id == self.principal.org_id or org.parent_id is None:
            raise PermissionDeniedError("you cannot delete your own organization or the root")
        busy = await fetch_one(
            self.session,
            """SELECT
            EXISTS (SELECT 1 FROM organization WHERE parent_id = :id) OR EXISTS (SELECT 1 FROM app_user WHERE org_id = :id)
            OR EXISTS (SELECT 1 FROM device WHERE org_id = :id) OR EXISTS (SELECT 1 FROM template WHERE org_id = :id)
            AS busy""",
            id=org_id,
        )
        if busy and busy["busy"]:
            raise ConflictError(
                "only an empty organization can be deleted: move or delete its "
                "sub-organizations, users, devices and templates first"
            )
        await execute(self.session, "DELETE FROM account_token WHERE org_id = :id", id=org_id)
        await execute(self.session, "DELETE FROM role WHERE org_id = :id", id=org_id)
        await execute(self.session, "DELETE FROM organization WHERE id = :id", id=org_id)
        await self.audit.record(self.principal, org.parent_id, "org.delete", "organization", org_id, name=org.name)

    async def move(self, org_id: int, new_parent_id: int) -> OrgInfo:
        """Put a sub-organization (with everything below it) under another organization."""
        org = await self.get(org_id)
        await self.scope.require_org(new_parent_id)
        if org_id == self.principal.org_id or org.parent_id is None:
            raise PermissionDeniedError("you cannot move your own organization or the root")
        below = await subtree(self.session, org_id)
        if new_parent_id in below:
            raise ValidationError("an organization cannot be moved under itself or one of its sub-organizations")
        height = max(below.values()) + 1
        if await self.depth(new_parent_id) + height > self.max_depth:
            raise ValidationError(
                f"organizations may be at most {self.max_depth} levels deep; "
                f"this one has {height - 1} level(s) below it"
            )
        above = await ancestry(self.session, org.parent_id)
        row = await self._write(
            f"UPDATE organization SET parent_id = :parent WHERE id = :id RETURNING {_COLUMNS}",
            org.name,
            id=org_id,
            parent=new_parent_id,
        )
        for left in sorted(set(above) - set(await ancestry(self.session, new_parent_id))):
            await notify(self.session, Change("org", left))  # its users' console sockets lose the moved devices
        await self.audit.record(
            self.principal,
            org_id,
            "org.move",
            "organization",
            org_id,
            from_parent_id=org.parent_id,
            to_parent_id=new_parent_id,
        )
        return OrgInfo(**row)

    async def depth(self, org_id: int) -> int:
        """The level of an organization (the root is 1)."""
        return len(await ancestry(self.session, org_id))

    async def _write(self, sql: str, name: str, /, **params: object) -> RowMapping:
        return await fetch_unique(self.session, sql, f"an organization named {name!r} already exists there", **params)


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError("an organization name must have 1 to 100 characters")
    return name


def _check_tz(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {tz!r} (use an IANA name such as Europe/Paris)") from None
    return tz
