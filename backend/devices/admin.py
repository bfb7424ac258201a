"""Creating, renaming, deleting and clearing devices within one principal's scope.

A service with no HTTP in it, for the platform API and the console alike: every call checks
the device or organization against the caller's scope (``DeviceDirectory``), records the
change in the audit log, and tells the other processes (device registry, broker) at once.
"""

from __future__ import annotations

import re

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.access.scope import Scope, template_above
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_all, fetch_one, fetch_unique
from backend.devices.directory import DeviceDirectory, DeviceInfo
from backend.devices.latest import LatestValues
from backend.devices.models import Device
from backend.devices.services import DeviceService
from backend.errors import NotFoundError, ValidationError
from backend.history.erase import erase_device_history
from backend.history.writer import HistoryWriter
from backend.security import AuthToken, Secrets

DEVICE_NAME = re.compile(r"^[\w' -]{1,50}$")
"""Blynk's device names: up to 50 letters, digits, spaces, apostrophes, underscores and hyphens."""


def check_device_name(name: str) -> str:
    """A stripped device name, or ValidationError with Blynk's rule."""
    name = name.strip()
    if not DEVICE_NAME.match(name):
        raise ValidationError(
            "Device name should be up to 50 symbols in length and may contain only letters, "
            "digits, spaces, apostrophes, underscores and hyphens."
        )
    return name


class DeviceAdmin:
    """Device life-cycle operations in one principal's scope."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, secrets: Secrets) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit
        self.secrets = secrets
        self.directory = DeviceDirectory(session, scope, audit)

    async def create(
        self, org_id: int | None, template_id: int, name: str, owner_id: int | None = None
    ) -> tuple[Device, AuthToken]:
        """A new device of a template usable in the organization (owned by it or one above it),
        optionally owned by a user of that organization."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        name = check_device_name(name)
        if not await template_above(self.session, template_id, org):
            raise NotFoundError("Template is not found.")
        if owner_id is not None:
            owner = await fetch_one(
                self.session, "SELECT 1 AS ok FROM app_user WHERE id = :id AND org_id = :org", id=owner_id, org=org
            )
            if owner is None:
                raise NotFoundError("User is not found or you don't have access to him.")
        device, token = await DeviceService(self.session, self.secrets).create(org, template_id, name)
        if owner_id is not None:
            device.owner_id = owner_id
            self.session.add(device)
            await self.session.flush()
        await self.audit.record(
            self.principal, org, "device.create", "device", device.id, name=name, template_id=template_id
        )
        return device, token

    async def rename(self, device_id: int, name: str) -> DeviceInfo:
        """Give a device another name (unique in its organization)."""
        device = await self.directory.get(device_id)
        name = check_device_name(name)
        await fetch_unique(
            self.session,
            "UPDATE device SET name = :name WHERE id = :id RETURNING id",
            f"a device named {name!r} already exists in this organization",
            name=name,
            id=device_id,
        )
        await notify(self.session, Change("device", device_id))
        await self.audit.record(
            self.principal, device.org_id, "device.rename", "device", device_id, before=device.name, after=name
        )
        return await self.directory.get(device_id)

    async def remove_owner(self, device_id: int) -> DeviceInfo:
        """The device no longer has an owner."""
        device = await self.directory.get(device_id)
        await execute(self.session, "UPDATE device SET owner_id = NULL WHERE id = :id", id=device_id)
        await notify(self.session, Change("device", device_id))  # the old owner's console sockets let it go
        await self.audit.record(
            self.principal, device.org_id, "device.owner_remove", "device", device_id, owner_id=device.owner_id
        )
        return await self.directory.get(device_id)

    async def delete(self, device_id: int, history: HistoryWriter | None = None) -> None:
        """Delete a device: its token stops working and a connected device is disconnected.
        Its values, metadata, properties, timeline, files, shipment statuses and history go
        with it (``history``: the running writer, whose pending rows are settled first)."""
        device = await self.directory.get(device_id)
        if history is not None:
            await history.settled_now()
        await erase_device_history(self.session, device_id)
        await execute(self.session, "DELETE FROM device WHERE id = :id", id=device_id)
        await notify(self.session, Change("device", device_id, revoked=True))
        await self.audit.record(self.principal, device.org_id, "device.delete", "device", device_id, name=device.name)

    async def clear(self, device_id: int, latest: LatestValues, history: HistoryWriter | None = None) -> None:
        """Erase the device's data: latest datastream values, widget properties, metadata values,
        its timeline, its actions log and its history (``history``: the running writer, settled
        first so rows on their way do not come back)."""
        device = await self.directory.get(device_id)
        if history is not None:
            await history.settled_now()
        await erase_device_history(self.session, device_id)
        stored = await fetch_all(self.session, "SELECT pin FROM datastream_value WHERE device_id = :id", id=device_id)
        pins = {int(r["pin"]) for r in stored} | set(await latest.get_all(device_id))  # some not yet written
        for pin in sorted(pins):
            await latest.erase(device_id, pin)
        for table in ("device_property", "device_meta", "device_event", "device_action"):
            await execute(self.session, f"DELETE FROM {table} WHERE device_id = :id", id=device_id)
        await self.audit.record(self.principal, device.org_id, "device.clear", "device", device_id)
