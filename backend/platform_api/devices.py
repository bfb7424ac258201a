"""Devices through the platform API: Blynk's device object, values, properties, events,
transfers and the timeline, within the caller's scope.

Visibility is ``DeviceDirectory``'s (an unseen device is answered as one that does not
exist); life-cycle changes are ``DeviceAdmin``'s; values go through ``DataService`` (the HTTP
device API's own path: checked, stored, sent to the device on ``downlink/ds/<name>``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission, Principal
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import fetch_all, fetch_one
from backend.devices.actions import Actor
from backend.devices.admin import DeviceAdmin
from backend.devices.directory import DeviceDirectory
from backend.devices.models import Device
from backend.devices.registry import DeviceInfo as Registered
from backend.errors import NotFoundError, PermissionDeniedError, ValidationError
from backend.platform_api.runtime import PlatformRuntime
from backend.platform_api.schemas import (
    ActionLogEntryOut,
    DataStreamValue,
    HardwareInfo,
    MetaFieldValue,
    MetaValue,
    PlatformDevice,
    TimelineEntryOut,
)
from backend.templates.values import MULTI_SEPARATOR, DatastreamPin, DatastreamSpec, json_of, wire_text

ACTIONS_PAGE_MAX = 100
"""Blynk's largest page of the actions log."""
_DEVICE_SQL = """SELECT d.*, t.hardware FROM device d JOIN template t ON t.id = d.template_id WHERE d.id = ANY(:ids)"""


def ms(at: datetime | None) -> int:
    """Blynk's timestamps: epoch milliseconds, 0 for never."""
    return int(at.timestamp() * 1000) if at is not None else 0


def not_found(device_id: int) -> NotFoundError:
    """Blynk's text for a device outside the caller's reach."""
    return NotFoundError(f"Device with identifier {device_id} is not found or belong to another organization.")


def raw_value(value: Any) -> str:
    """A JSON value as the text the device API would receive (a location ``[lon, lat]`` too)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return MULTI_SEPARATOR.join(str(v) for v in value)
    if value is None or isinstance(value, dict):
        raise ValidationError("Value doesn't match the Datastream data type.")
    return str(value)


class PlatformDevices:
    """Devices of one principal's scope, in Blynk's platform API shapes."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, runtime: PlatformRuntime) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.runtime = runtime
        self.audit = audit
        self.directory = DeviceDirectory(session, scope, audit)
        self.admin = DeviceAdmin(session, scope, audit, runtime.secrets)

    async def visible(self, device_id: int) -> Registered:
        """The registry's view of a device the caller may see."""
        try:
            await self.directory.get(device_id)
        except NotFoundError:
            raise not_found(device_id) from None
        info = await self.runtime.registry.get(device_id)
        if info is None:
            raise not_found(device_id)
        return info

    async def writable(self, device_id: int) -> Registered:
        """A device the caller may control (``devices.edit``, or ``devices.edit.own`` and owning it)."""
        info = await self.visible(device_id)
        if not self.principal.has(Permission.DEVICES_EDIT):
            row = await fetch_one(self.session, "SELECT owner_id FROM device WHERE id = :id", id=device_id)
            if row is None or row["owner_id"] != self.principal.user_id:
                raise PermissionDeniedError("you may control only the devices you own")
        return info

    async def list_devices(self, include_sub_orgs: bool, page: int, size: int) -> tuple[list[PlatformDevice], int]:
        """Devices of the caller's organization (and of those below it when asked), by id."""
        org = None if include_sub_orgs else self.principal.org_id
        infos, total = await self.directory.list(org, page, size)
        return await self.describe([d.id for d in infos]), total

    async def search(
        self, query: str, sort_by: str, sort_order: str, page: int, size: int
    ) -> tuple[list[PlatformDevice], int]:
        """Visible devices whose name contains ``query``."""
        columns = {"id": "id", "name": "name", "createdAt": "created_at", "activatedAt": "created_at"}
        if sort_by not in columns or sort_order.upper() not in ("ASC", "DESC"):
            raise ValidationError(f"sortBy is one of {', '.join(columns)} and sortOrder ASC or DESC")
        orgs = sorted(await self.scope.org_ids())
        own, params = (
            ("", {})
            if self.principal.has(Permission.DEVICES_VIEW)
            else (" AND owner_id = :me", {"me": self.principal.user_id})
        )
        text = query.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = await fetch_all(
            self.session,
            f"""SELECT id, count(*) OVER () AS total FROM device
            WHERE org_id = ANY(:orgs){own} AND name ILIKE :q ORDER BY {columns[sort_by]} {sort_order.upper()}, id
            LIMIT :size OFFSET :offset""",
            orgs=orgs,
            q=f"%{text}%",
            size=size,
            offset=page * size,
            **params,
        )
        if not rows and page:
            total = await fetch_one(
                self.session,
                f"SELECT count(*) AS n FROM device WHERE org_id = ANY(:orgs){own} AND name ILIKE :q",
                orgs=orgs,
                q=f"%{text}%",
                **params,
            )
            return [], int(total["n"]) if total else 0
        return await self.describe([int(r["id"]) for r in rows]), int(rows[0]["total"]) if rows else 0

    async def describe(self, ids: list[int], full: bool = False) -> list[PlatformDevice]:
        """Blynk's device objects, in the order of ``ids`` (``full``: with token, values and metadata)."""
        rows = {int(r["id"]): r for r in await fetch_all(self.session, _DEVICE_SQL, ids=ids)}
        out = []
        for device_id in ids:
            r = rows[device_id]
            device = PlatformDevice(
                id=device_id,
                templateId=r["template_id"],
                orgId=r["org_id"],
                name=r["name"],
                activatedAt=ms(r["created_at"]),
                ownerUserId=r["owner_id"],
                hardwareInfo=HardwareInfo(
                    r["fw_version"],
                    r["fw_type"],
                    r["blynk_version"],
                    r["hardware"],
                    r["fw_build"],
                    r["board_template_id"],
                ),
                connectTime=ms(r["connected_at"]),
                disconnectTime=ms(r["disconnected_at"]),
                ip=r["ip"],
                online=bool(r["online"]),
            )
            if full:
                info = await self.visible(device_id)
                if self.principal.has(Permission.TOKENS_VIEW):
                    device.token = self.runtime.secrets.decrypt_token(r["token_encrypted"]).value
                device.dataStreamValues = await self.values(info, None)
                device.metaFieldValues = [
                    MetaFieldValue(
                        spec.field_id,
                        spec.name,
                        MetaValue(spec.type, await self.runtime.devices.meta.value(info, spec)),
                    )
                    for spec in info.meta.values()
                ]
            out.append(device)
        return out

    async def get(self, device_id: int, full: bool = True) -> PlatformDevice:
        """One device; ``full`` adds the token (with ``tokens.view``), values and metadata."""
        await self.visible(device_id)
        return (await self.describe([device_id], full))[0]

    async def create(self, template: int | str, name: str, org_id: int | None, owner_id: int | None) -> PlatformDevice:
        """A new device of a template (by numeric id or ``TMPL...`` id)."""
        template_id = await self._template_id(template)
        device, token = await self.admin.create(org_id, template_id, name, owner_id)
        assert device.id is not None
        self.runtime.registry.invalidate(device.id)
        created = (await self.describe([device.id]))[0]
        if self.principal.has(Permission.TOKENS_VIEW):
            created.token = token.value
        return created

    async def rename(self, device_id: int, name: str) -> PlatformDevice:
        await self.visible(device_id)
        await self.admin.rename(device_id, name)
        self.runtime.registry.invalidate(device_id)
        return await self.get(device_id, full=False)

    async def delete(self, device_id: int) -> None:
        await self.visible(device_id)
        await self.admin.delete(device_id, self.runtime.devices.data.history)
        self.runtime.registry.invalidate(device_id)

    async def clear(self, device_id: int) -> None:
        await self.visible(device_id)
        await self.admin.clear(device_id, self.runtime.devices.data.latest, self.runtime.devices.data.history)

    async def remove_owner(self, device_id: int) -> None:
        await self.visible(device_id)
        await self.admin.remove_owner(device_id)

    async def transfer(self, device_id: int, new_user_id: int | None, new_org_id: int | None) -> None:
        """Give the device a new owner (and that owner's organization) or a new organization."""
        await self.visible(device_id)
        if new_user_id is None and new_org_id is None:
            raise ValidationError("give newUserId or newOrgId")
        if new_user_id is not None:
            row = await fetch_one(
                self.session,
                "SELECT org_id, status FROM app_user WHERE id = :id AND org_id = ANY(:orgs)",
                id=new_user_id,
                orgs=sorted(await self.scope.org_ids()),
            )
            if row is None or row["status"] != "active":
                raise NotFoundError("User is not found or you don't have access to him.")
            owner = await fetch_one(self.session, "SELECT owner_id, org_id FROM device WHERE id = :id", id=device_id)
            if owner is not None and owner["owner_id"] == new_user_id:
                raise ValidationError("Can't transfer to the same owner")
            if owner is not None and owner["org_id"] != row["org_id"]:
                await self._move(device_id, int(row["org_id"]))
            device = await self.session.get(Device, device_id)
            assert device is not None
            device.owner_id = new_user_id
            self.session.add(device)
            await self.session.flush()
            await notify(self.session, Change("device", device_id))  # the old owner's console sockets let it go
        else:
            assert new_org_id is not None
            await self._move(device_id, new_org_id)
        self.runtime.registry.invalidate(device_id)

    async def _move(self, device_id: int, org_id: int) -> None:
        try:
            await self.scope.require_org(org_id)
        except NotFoundError:
            raise NotFoundError("Destination organization is not found or you don't have access to it.") from None
        await self.directory.move(device_id, org_id)

    async def values(self, info: Registered, pins: list[int] | None) -> list[DataStreamValue]:
        """Latest values (or defaults) of the asked pins, or of every datastream."""
        latest = await self.runtime.devices.data.latest.get_all(info.id)
        specs = (
            [self.spec(info, p) for p in pins] if pins is not None else [info.by_pin[p] for p in sorted(info.by_pin)]
        )
        out = []
        for spec in specs:
            stored = latest.get(spec.pin)
            text = stored.value if stored is not None else spec.default_value
            out.append(
                DataStreamValue(
                    spec.pin,
                    f"v{spec.pin}",
                    spec.name,
                    spec.name,
                    None if text is None else json_of(spec, text),
                    ms(stored.updated_at) if stored is not None else None,
                )
            )
        return out

    @staticmethod
    def spec(info: Registered, datastream: int | str) -> DatastreamSpec:
        """A datastream by id (= its pin number) or by pin name (``v1``)."""
        if isinstance(datastream, str):
            text = datastream.strip()
            pin = DatastreamPin.parse(text).number if text[:1] in "vV" else _int(text)
        else:
            pin = datastream
        spec = info.by_pin.get(pin)
        if spec is None:
            raise NotFoundError(f"Data stream with identifier {datastream} is not found!")
        return spec

    async def write(self, device_id: int, values: dict[str, Any] | dict[int | str, Any]) -> None:
        """Set datastream values as the HTTP API's ``update`` (every value checked before any is stored)."""
        info = await self.writable(device_id)
        checked = [
            (spec, self.runtime.devices.data.check(spec, raw_value(v)))
            for spec, v in ((self.spec(info, k), v) for k, v in values.items())
        ]
        if not checked:
            raise ValidationError("values is empty")
        actor = Actor.of(self.principal)
        for spec, value in checked:
            await self.runtime.devices.data.write_from_server(info, spec, value.text, actor)

    async def set_property(self, device_id: int, datastream: int | str, name: str, value: Any) -> None:
        """A widget property of a datastream, as the device's ``ds/<name>/prop/<property>``."""
        info = await self.writable(device_id)
        spec = self.spec(info, datastream)
        await self.runtime.devices.properties.set(info.id, spec.pin, name, raw_value(value))

    async def log_event(self, device_id: int, code: str, description: str) -> None:
        """Log a template event on the device's timeline (the device's limits apply)."""
        info = await self.writable(device_id)
        await self.runtime.devices.timeline.log_event(info, code, description)

    async def metafields(self, device_id: int) -> list[MetaFieldValue]:
        info = await self.visible(device_id)
        return [
            MetaFieldValue(s.field_id, s.name, MetaValue(s.type, await self.runtime.devices.meta.value(info, s)))
            for s in info.meta.values()
        ]

    async def set_metafield(self, device_id: int, field_id: int | None, field_name: str | None, value: Any) -> None:
        """Set a metadata value (pushed to the device on ``downlink/meta/<name>``)."""
        info = await self.writable(device_id)
        spec = info.meta_by_id(field_id) if field_id is not None else info.meta.get(field_name or "")
        if spec is None:
            raise NotFoundError("MetaField doesn't exist.")
        await self.runtime.devices.meta.set_from_server(info, spec, raw_value(value))

    async def timeline(
        self, device_id: int, event_type: str | None, page: int, size: int
    ) -> tuple[list[TimelineEntryOut], int]:
        """Timeline entries (events, online, offline), newest first."""
        await self.visible(device_id)
        kinds = {"INFORMATION": "info", "WARNING": "warning", "CRITICAL": "critical", "CONTENT": "content"}
        if event_type is not None and event_type.upper() not in (*kinds, "ONLINE", "OFFLINE"):
            raise ValidationError(f"eventType is one of {', '.join((*kinds, 'ONLINE', 'OFFLINE'))}")
        where, params = "", {}
        if event_type is not None:
            upper = event_type.upper()
            where = " AND kind = :kind" if upper in ("ONLINE", "OFFLINE") else " AND kind = 'event' AND type = :kind"
            params["kind"] = upper.lower() if upper in ("ONLINE", "OFFLINE") else kinds[upper]
        rows = await fetch_all(
            self.session,
            f"""SELECT id, ts, kind, code, type, description, count(*) OVER () AS total
            FROM device_event WHERE device_id = :d{where} ORDER BY ts DESC, id DESC LIMIT :size OFFSET :offset""",
            d=device_id,
            size=size,
            offset=page * size,
            **params,
        )
        names = {v: k for k, v in kinds.items()}
        out = [
            TimelineEntryOut(
                int(r["id"]),
                r["code"],
                names.get(r["type"] or "", "INFORMATION") if r["kind"] == "event" else r["kind"].upper(),
                r["description"] or "",
                ms(r["ts"]),
            )
            for r in rows
        ]
        return out, int(rows[0]["total"]) if rows else 0

    async def actions(self, device_id: int, page: int, size: int) -> tuple[list[ActionLogEntryOut], int]:
        """The device's actions log (values set by users and API clients), newest first; ``size``
        at most ``ACTIONS_PAGE_MAX`` (Blynk's limit)."""
        if size > ACTIONS_PAGE_MAX:
            raise ValidationError(f"size must be 1 to {ACTIONS_PAGE_MAX}")
        info = await self.visible(device_id)
        rows = await fetch_all(
            self.session,
            """SELECT pin, value, actor_email, is_online, created_at,
            count(*) OVER () AS total FROM device_action WHERE device_id = :d
            ORDER BY created_at DESC, id DESC LIMIT :size OFFSET :offset""",
            d=device_id,
            size=size,
            offset=page * size,
        )
        out = []
        for r in rows:
            spec = info.by_pin.get(int(r["pin"]))
            text = wire_text(r["value"])
            value = json_of(spec, text) if spec is not None else text
            out.append(
                ActionLogEntryOut(
                    r["actor_email"], value, int(r["pin"]), "VIRTUAL", bool(r["is_online"]), ms(r["created_at"])
                )
            )
        if rows:
            return out, int(rows[0]["total"])
        counted = (
            await fetch_one(self.session, "SELECT count(*) AS n FROM device_action WHERE device_id = :d", d=device_id)
            if page
            else None
        )  # past the last page: still the total
        return out, int(counted["n"]) if counted else 0

    async def _template_id(self, template: int | str) -> int:
        if isinstance(template, int):
            return template
        row = await fetch_one(self.session, "SELECT id FROM template WHERE public_id = :p", p=template.strip())
        if row is None:
            raise NotFoundError("Template is not found.")
        return int(row["id"])


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValidationError(f"dataStreamId must be a number or a pin such as v1, not {text[:20]!r}") from None
