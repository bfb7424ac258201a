"""A device's auth token managed after the fact (issue #17 item 4): reissued (a new token, shown
once to the caller) or revoked (the current token stops working and no token is shown: the
device stays out until someone reissues one), and every device token of a template exported at
once (``tokens.view``). Either change disconnects a connected device at once: the change notice
``device:<id>:revoked`` reaches the broker process, which ends the session with presence reason
``revoked``. Every reissue, revocation and export is in the audit log."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.csvcells import safe_cell
from backend.db.sql import fetch_all
from backend.devices.directory import DeviceDirectory
from backend.devices.models import Device
from backend.devices.services import DeviceService
from backend.errors import NotFoundError
from backend.security import AuthToken, Secrets


@dataclass(frozen=True, slots=True)
class DeviceToken:
    """A device with its auth token in clear."""

    device_id: int
    name: str
    org_id: int
    token: str


class DeviceTokens:
    """Token operations on the devices one principal may see."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, secrets: Secrets) -> None:
        self.session = session
        self.scope = scope
        self.audit = audit
        self.directory = DeviceDirectory(session, scope, audit)
        self.devices = DeviceService(session, secrets)
        self.secrets = secrets

    async def reissue(self, device_id: int) -> AuthToken:
        """A new token for the device; the old one stops working now."""
        device = await self._device(device_id)
        token = await self.devices.set_token(device)
        await self.audit.record(self.scope.principal, device.org_id, "device.token_reissue", "device", device_id)
        return token

    async def revoke(self, device_id: int) -> None:
        """End the device's token now; the device is out until a token is reissued."""
        device = await self._device(device_id)
        await self.devices.set_token(device)  # a token nobody is shown
        await self.audit.record(self.scope.principal, device.org_id, "device.token_revoke", "device", device_id)

    async def of_template(self, template_id: int) -> list[DeviceToken]:
        """Every visible device of a template with its token, by id (audited as an export)."""
        where, params = await self.directory.visibility()
        rows = await fetch_all(
            self.session,
            f"SELECT id, name, org_id, token_encrypted FROM device WHERE template_id = :t AND {where} ORDER BY id",
            t=template_id,
            **params,
        )
        if not rows:
            raise NotFoundError("no devices of that template")
        out = [
            DeviceToken(
                int(r["id"]), str(r["name"]), int(r["org_id"]), self.secrets.decrypt_token(r["token_encrypted"]).value
            )
            for r in rows
        ]
        for org in sorted({t.org_id for t in out}):
            count = sum(1 for t in out if t.org_id == org)
            await self.audit.record(
                self.scope.principal, org, "device.token_export", "template", template_id, count=count
            )
        return out

    async def _device(self, device_id: int) -> Device:
        await self.directory.get(device_id)  # visibility, as every device route
        device = await self.session.get(Device, device_id)
        if device is None:
            raise NotFoundError("device not found")
        return device


def tokens_csv(tokens: list[DeviceToken]) -> str:
    """``device_id,name,org_id,auth_token`` lines (names escaped as every export's cells)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["device_id", "name", "org_id", "auth_token"])
    for t in tokens:
        writer.writerow([t.device_id, safe_cell(t.name), t.org_id, t.token])
    return out.getvalue()
