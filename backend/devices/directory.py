"""Devices as resources of the organization tree: which ones a user sees, and moving them
between the organizations of their scope (``backend.access.scope``).

With ``devices.view`` a user sees every device of the organizations in their scope; with only
``devices.view.own`` (Blynk's built-in User) just the devices they own. A device outside that
is answered as one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission
from backend.access.scope import Scope, template_above
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import fetch_all, fetch_one, fetch_unique
from backend.errors import NotFoundError, ValidationError

_COLUMNS = "id, org_id, template_id, name, owner_id, online, last_seen, created_at"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device's place and state, without its token."""

    id: int
    org_id: int
    template_id: int
    name: str
    owner_id: int | None
    online: bool
    last_seen: datetime | None
    created_at: datetime


class DeviceDirectory:
    """Devices within one principal's scope."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService) -> None:
        self.session = session
        self.scope = scope
        self.principal = scope.principal
        self.audit = audit

    async def list(self, org_id: int | None, page: int, size: int) -> tuple[list[DeviceInfo], int]:
        """Visible devices (of one organization, or of the whole scope), by id."""
        if org_id is not None:
            await self.scope.require_org(org_id)
        where, params = await self.visibility()
        if org_id is not None:
            where, params = f"{where} AND org_id = :org", {**params, "org": org_id}
        rows = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM device "
            f"WHERE {where} ORDER BY id LIMIT :size OFFSET :offset",
            **params,
            size=size,
            offset=page * size,
        )
        total = int(rows[0]["total"]) if rows else await self._count(where, params) if page else 0
        return [DeviceInfo(**{k: v for k, v in r.items() if k != "total"}) for r in rows], total

    async def get(self, device_id: int) -> DeviceInfo:
        """One visible device."""
        where, params = await self.visibility()
        row = await fetch_one(
            self.session, f"SELECT {_COLUMNS} FROM device WHERE id = :id AND {where}", id=device_id, **params
        )
        if row is None:
            raise NotFoundError("device not found")
        return DeviceInfo(**row)

    async def move(self, device_id: int, org_id: int) -> DeviceInfo:
        """Give a device to another organization of the scope (its template must be usable there:
        owned by that organization or one above it)."""
        device = await self.get(device_id)
        await self.scope.require_org(org_id)
        if not await template_above(self.session, device.template_id, org_id):
            raise ValidationError(
                "the device's template belongs to an organization that is not above the "
                "target organization, so the device cannot use it there"
            )
        row = await fetch_unique(
            self.session,
            f"UPDATE device SET org_id = :org WHERE id = :id RETURNING {_COLUMNS}",
            f"the target organization already has a device named {device.name!r}",
            org=org_id,
            id=device_id,
        )
        await notify(self.session, Change("device", device_id))
        for org in (device.org_id, org_id):
            await self.audit.record(
                self.principal, org, "device.move", "device", device_id, from_org_id=device.org_id, to_org_id=org_id
            )
        return DeviceInfo(**row)

    async def _count(self, where: str, params: dict[str, object]) -> int:
        """How many devices match, for a page past the end (which has no row to carry the total)."""
        row = await fetch_one(self.session, f"SELECT count(*) AS n FROM device WHERE {where}", **params)
        return int(row["n"]) if row else 0

    async def visibility(self) -> tuple[str, dict[str, object]]:
        """The condition over ``device`` (unqualified columns) selecting the visible devices, and
        its parameters: every device of the scope, or only those the principal owns."""
        params: dict[str, object] = {"orgs": sorted(await self.scope.org_ids())}
        if self.principal.has(Permission.DEVICES_VIEW):
            return "org_id = ANY(:orgs)", params
        return "org_id = ANY(:orgs) AND owner_id = :me", {**params, "me": self.principal.user_id}
