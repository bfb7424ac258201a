"""Devices as the console shows and controls them, within one user's scope.

Values written from the console go through ``DataService.write_from_server``, the HTTP
device API's own path: checked against the datastream, stored as latest value and history,
sent to the device on ``downlink/ds/<name>``, and seen by every open dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission, Principal
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.console.runtime import ConsoleRuntime
from backend.db.sql import fetch_all
from backend.devices.actions import Actor
from backend.devices.admin import DeviceAdmin
from backend.devices.directory import DeviceDirectory
from backend.devices.models import Device
from backend.devices.registry import DeviceInfo
from backend.devices.services import DeviceService
from backend.errors import NotFoundError, PermissionDeniedError, ValidationError
from backend.history.queries import Series, series
from backend.security import AuthToken
from backend.templates.meta import DEVICE_NAME as DEVICE_NAME_FIELD
from backend.templates.meta import MetaFieldSpec
from backend.templates.values import Value

STATUSES = ("online", "offline")
BACKLOG_DAYS = 7
"""How far back a terminal's backlog looks in the history."""
MAX_BACKLOG = 500
_RECENT_TEXT_SQL = """SELECT ts, text_value FROM history_points(%(device)s, %(pin)s, %(start)s, %(end)s)
ORDER BY ts DESC LIMIT %(limit)s"""


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A line of the devices list."""

    id: int
    name: str
    org_id: int
    org_name: str
    template_id: int
    template_name: str
    online: bool
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One timeline line: an event, or the device going online or offline."""

    ts: datetime
    kind: str
    code: str | None
    type: str | None
    description: str | None


class DeviceConsole:
    """Devices of one principal's scope (visibility as ``DeviceDirectory``: all, or owned)."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, runtime: ConsoleRuntime) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit
        self.registry = runtime.registry
        self.secrets = runtime.secrets
        self.services = runtime.devices
        self.pool = runtime.pool
        self.directory = DeviceDirectory(session, scope, audit)
        self.admin = DeviceAdmin(session, scope, audit, runtime.secrets)

    async def search(
        self,
        text: str = "",
        status: str = "",
        template_id: int | None = None,
        org_id: int | None = None,
        limit: int = 500,
    ) -> list[DeviceRow]:
        """Visible devices whose name contains ``text``, filtered by status, template, organization."""
        if status and status not in STATUSES:
            raise ValidationError("status must be online, offline or empty")
        if org_id is not None:
            await self.scope.require_org(org_id)
        where, params = await self._visible()
        where.append("d.name ILIKE :text")
        params.update(text=f"%{_like(text.strip())}%", limit=limit)
        if status:
            where.append("d.online" if status == "online" else "NOT d.online")
        if template_id is not None:
            where.append("d.template_id = :template")
            params["template"] = template_id
        if org_id is not None:
            where.append("d.org_id = :org")
            params["org"] = org_id
        rows = await fetch_all(
            self.session,
            f"""
            SELECT d.id, d.name, d.org_id, o.name AS org_name, d.template_id, t.name AS template_name, d.online,
                   d.last_seen FROM device d JOIN template t ON t.id = d.template_id
            JOIN organization o ON o.id = d.org_id WHERE {" AND ".join(where)} ORDER BY d.name, d.id LIMIT :limit""",
            **params,
        )
        return [DeviceRow(**r) for r in rows]

    async def visible(self, device_ids: list[int]) -> list[int]:
        """Those of ``device_ids`` the principal may see."""
        where, params = await self._visible()
        rows = await fetch_all(
            self.session,
            f"SELECT d.id FROM device d WHERE {' AND '.join(where)} AND d.id = ANY(:ids) ORDER BY d.id",
            **params,
            ids=device_ids,
        )
        return [int(r["id"]) for r in rows]

    async def _visible(self) -> tuple[list[str], dict[str, object]]:
        where = ["d.org_id = ANY(:orgs)"]
        params: dict[str, object] = {"orgs": sorted(await self.scope.org_ids())}
        if not self.principal.has(Permission.DEVICES_VIEW):
            where.append("d.owner_id = :me")
            params["me"] = self.principal.user_id
        return where, params

    async def get(self, device_id: int) -> Device:
        """A visible device, with everything the device page shows."""
        await self.directory.get(device_id)  # visibility
        device = await self.session.get(Device, device_id)
        if device is None:
            raise NotFoundError("device not found")
        return device

    async def info(self, device_id: int) -> DeviceInfo:
        """What the device's template says of it (datastreams, events, metadata)."""
        await self.get(device_id)
        info = await self.registry.get(device_id)
        if info is None:
            raise NotFoundError("device not found")
        return info

    async def create(self, org_id: int | None, template_id: int, name: str) -> tuple[Device, AuthToken]:
        """A new device of a template, through ``DeviceAdmin.create`` (the platform API's path, with
        the same rule: a template of the device's organization or of one above it). Its creator
        owns it when it is made in the creator's own organization (Blynk's owner is a user of the
        device's organization); made in a sub-organization it has no owner yet."""
        org = org_id if org_id is not None else self.principal.org_id
        owner = self.principal.user_id if org == self.principal.org_id else None
        return await self.admin.create(org, template_id, name, owner)

    async def token(self, device_id: int) -> AuthToken:
        """The device's auth token in clear (``tokens.view``)."""
        device = await self.get(device_id)
        await self.audit.record(self.principal, device.org_id, "device.token_view", "device", device_id)
        return DeviceService(self.session, self.secrets).token_of(device)

    async def rotate_token(self, device_id: int) -> AuthToken:
        """A new token; the old one stops working and the device is disconnected (``tokens.edit``)."""
        device = await self.get(device_id)
        token = await DeviceService(self.session, self.secrets).set_token(device)
        await self.audit.record(self.principal, device.org_id, "device.token_rotate", "device", device_id)
        return token

    async def controllable(self, device_id: int) -> Device:
        """A visible device the principal may change (``devices.edit``, or owning it)."""
        device = await self.get(device_id)
        if not self.principal.has(Permission.DEVICES_EDIT) and device.owner_id != self.principal.user_id:
            raise PermissionDeniedError("you may control only the devices you own")
        return device

    async def write(self, device_id: int, pin: int, value: str) -> Value:
        """Write a datastream value as the HTTP API's ``update`` does (the device receives it)."""
        await self.controllable(device_id)
        info = await self.info(device_id)
        spec = info.by_pin.get(pin)
        if spec is None:
            raise NotFoundError(f"the device's template has no datastream on V{pin}")
        return await self.services.data.write_from_server(info, spec, value, Actor.of(self.principal))

    async def latest(self, device_id: int) -> dict[int, tuple[str, datetime]]:
        """Latest values by pin."""
        await self.get(device_id)
        return {pin: (v.value, v.updated_at) for pin, v in (await self.services.data.latest.get_all(device_id)).items()}

    async def properties(self, device_id: int) -> dict[int, dict[str, str]]:
        """Widget properties set by the device, by pin then name."""
        await self.get(device_id)
        out: dict[int, dict[str, str]] = {}
        for (pin, name), value in (await self.services.properties.all(device_id)).items():
            out.setdefault(pin, {})[name] = value
        return out

    async def history(self, device_id: int, pin: int, start: datetime, end: datetime, points: int) -> Series:
        """Chart buckets (min, max, average) of a numeric datastream over a range."""
        info = await self.info(device_id)
        spec = info.by_pin.get(pin)
        if spec is None:
            raise NotFoundError(f"the device's template has no datastream on V{pin}")
        if spec.type.value not in ("integer", "double", "enum"):
            raise ValidationError(f"datastream {spec.name!r} holds {spec.type.value} values, which have no chart")
        return await series(self.pool, device_id, pin, start, end, points, save_raw=spec.save_raw)

    async def timeline(self, device_id: int, limit: int = 100, before: datetime | None = None) -> list[TimelineEntry]:
        """The newest timeline entries (events, online, offline), newest first."""
        await self.get(device_id)
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be 1..1000")
        rows = await fetch_all(
            self.session,
            """SELECT ts, kind, code, type, description FROM device_event
            WHERE device_id = :d AND (CAST(:before AS timestamptz) IS NULL OR ts < :before)
            ORDER BY ts DESC, id DESC LIMIT :limit""",
            d=device_id,
            before=before,
            limit=limit,
        )
        return [TimelineEntry(**r) for r in rows]

    async def metadata(self, device_id: int) -> list[tuple[MetaFieldSpec, str]]:
        """Every metadata field of the device with its value (system fields first)."""
        info = await self.info(device_id)
        return [(spec, await self.services.meta.value(info, spec)) for spec in info.meta.values()]

    async def set_metadata(self, device_id: int, name: str, value: str) -> str:
        """Set a metadata value as the platform API does: checked against the field's type,
        stored, and pushed to the device on ``downlink/meta/<name>``. ``Device Name`` renames the
        device (``DeviceAdmin.rename``); ``Device Owner`` cannot be set here. Answers the value."""
        await self.controllable(device_id)
        info = await self.info(device_id)
        spec = self.services.meta.field(info, name)
        if spec.name == DEVICE_NAME_FIELD:
            return (await self.admin.rename(device_id, value)).name
        await self.services.meta.set_from_server(info, spec, value)
        await self.audit.record(self.principal, info.org_id, "device.meta_update", "device", device_id, field=spec.name)
        return await self.services.meta.value(info, spec)

    async def recent_lines(self, device_id: int, pin: int, limit: int = 50) -> list[tuple[datetime, str]]:
        """The newest ``limit`` values of a string datastream (a terminal's backlog), oldest
        first: its raw history of the last ``BACKLOG_DAYS`` days when the datastream saves raw
        data, and its latest value when that is newer (or the only thing kept)."""
        info = await self.info(device_id)
        spec = info.by_pin.get(pin)
        if spec is None:
            raise NotFoundError(f"the device's template has no datastream on V{pin}")
        if spec.type.value != "string":
            raise ValidationError(f"datastream {spec.name!r} holds {spec.type.value} values; a terminal shows strings")
        if not 1 <= limit <= MAX_BACKLOG:
            raise ValidationError(f"limit must be 1..{MAX_BACKLOG}")
        lines: list[tuple[datetime, str]] = []
        if spec.save_raw:
            end = datetime.now(UTC) + timedelta(minutes=1)
            async with self.pool.connection() as conn:
                rows = await (
                    await conn.execute(
                        _RECENT_TEXT_SQL,
                        {
                            "device": device_id,
                            "pin": pin,
                            "start": end - timedelta(days=BACKLOG_DAYS),
                            "end": end,
                            "limit": limit,
                        },
                    )
                ).fetchall()
            lines = [(ts, text) for ts, text in reversed(rows) if text is not None]
        latest = (await self.services.data.latest.get_all(device_id)).get(pin)
        if latest is not None and (not lines or latest.updated_at > lines[-1][0]):
            lines.append((latest.updated_at, latest.value))  # not in history (yet, or at all)
        return lines[-limit:]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
