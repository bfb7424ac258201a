"""Device look-ups of the platform API: by owner e-mail, by a user's organization, the recently
activated ones, and tags; plus importing timestamped points (``/device/import/batch``).

Every list is of the devices the caller sees (``DeviceDirectory.visibility``: the scope's, or
only the owned ones with ``devices.view.own``); a user, organization or device outside the
scope answers 404 as one that does not exist. A device's activation is its creation
(``device.created_at``, which is also the device object's ``activatedAt``): openblynk makes a
device when it is added or provisioned, and its token works from then on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backend.db.sql import fetch_all, fetch_one
from backend.devices.tags import DeviceTags, tags_of
from backend.errors import NotFoundError, ValidationError
from backend.platform_api.devices import PlatformDevices, ms, not_found
from backend.platform_api.schemas import ActivatedDevice, DeviceTagOut, ImportPoint, OrgTagOut, PlatformDevice

MINUTES_MAX = 60
"""``/device/last-activated`` looks back 1 to 60 minutes (Blynk's range)."""


class PlatformLookups:
    """Device searches and tags in Blynk's shapes, within the caller's scope."""

    def __init__(self, devices: PlatformDevices, tags: DeviceTags) -> None:
        self.devices = devices
        self.tags = tags
        self.session = devices.session
        self.scope = devices.scope
        self.principal = devices.principal

    async def by_owner(self, email: str, org_id: int | None, page: int, size: int) -> tuple[list[PlatformDevice], int]:
        """Visible devices of one organization (the caller's by default) owned by the user with ``email``."""
        org = await self._org(org_id)
        return await self._page(
            "owner_id IN (SELECT id FROM app_user WHERE lower(email) = lower(:email)) AND org_id = :org",
            {"email": _email(email), "org": org},
            page,
            size,
        )

    async def by_user_org(self, email: str, page: int, size: int) -> tuple[list[PlatformDevice], int]:
        """Visible devices of the organization of the user with ``email`` (a user of the scope)."""
        row = await fetch_one(
            self.session,
            "SELECT org_id FROM app_user WHERE lower(email) = lower(:email) AND org_id = ANY(:orgs)",
            email=_email(email),
            orgs=sorted(await self.scope.org_ids()),
        )
        if row is None:
            raise NotFoundError("User is not found or you don't have access to him.")
        return await self._page("org_id = :org", {"org": int(row["org_id"])}, page, size)

    async def last_activated(self, org_id: int | None, minutes: int) -> list[ActivatedDevice]:
        """Visible devices of one organization (the caller's by default; never its sub-organizations)
        activated within the last ``minutes``, newest first."""
        if not 1 <= minutes <= MINUTES_MAX:
            raise ValidationError(f"minutes should be a valid integer from 1 to {MINUTES_MAX}")
        org = await self._org(org_id)
        where, params = await self.devices.directory.visibility()
        since = datetime.now(UTC) - timedelta(minutes=minutes)
        rows = await fetch_all(
            self.session,
            "SELECT id, template_id, org_id, owner_id, created_at FROM device "
            f"WHERE {where} AND org_id = :org AND created_at >= :since "
            "ORDER BY created_at DESC, id DESC",
            org=org,
            since=since,
            **params,
        )
        return [
            ActivatedDevice(int(r["id"]), int(r["template_id"]), int(r["org_id"]), r["owner_id"], ms(r["created_at"]))
            for r in rows
        ]

    async def device_tags(self, device_id: int) -> list[DeviceTagOut]:
        """A visible device's tags (``tagOwnerOrgId``: the device's organization, where tags live)."""
        try:
            device = await self.devices.directory.get(device_id)
        except NotFoundError:
            raise not_found(device_id) from None
        return [
            DeviceTagOut(device.org_id, tag) for tag in (await tags_of(self.session, [device_id])).get(device_id, [])
        ]

    async def org_tags(self, org_id: int | None) -> list[OrgTagOut]:
        """Tags on the visible devices of one organization (the caller's by default), with how many carry each."""
        return [OrgTagOut(use.tag, use.devices) for use in await self.tags.in_use(await self._org(org_id))]

    async def import_points(self, device_id: int, datastream: int | str, values: list[ImportPoint]) -> None:
        """Timestamped points into one datastream's history, through the device API's batch import
        (same checks, daily limit and all-or-nothing storage); the caller must be able to control the device."""
        info = await self.devices.writable(device_id)
        spec = self.devices.spec(info, datastream)
        items: list[list[Any]] = [[p.ts, p.value] for p in values]
        await self.devices.runtime.batch.import_items(info.id, spec, items)
        await self.devices.audit.record(
            self.principal, info.org_id, "device.import", "device", info.id, pin=spec.pin, points=len(items)
        )

    async def _org(self, org_id: int | None) -> int:
        if org_id is None:
            return self.principal.org_id
        try:
            await self.scope.require_org(org_id)
        except NotFoundError:
            raise NotFoundError(
                f"Organization with identifier {org_id} is not found or you don't have access to it."
            ) from None
        return org_id

    async def _page(
        self, cond: str, cond_params: dict[str, object], page: int, size: int
    ) -> tuple[list[PlatformDevice], int]:
        where, params = await self.devices.directory.visibility()
        rows = await fetch_all(
            self.session,
            f"SELECT id, count(*) OVER () AS total FROM device WHERE {where} "
            f"AND {cond} ORDER BY id LIMIT :size OFFSET :offset",
            size=size,
            offset=page * size,
            **params,
            **cond_params,
        )
        if not rows and page:
            n = await fetch_one(
                self.session, f"SELECT count(*) AS n FROM device WHERE {where} AND {cond}", **params, **cond_params
            )
            return [], int(n["n"]) if n else 0
        return await self.devices.describe([int(r["id"]) for r in rows]), int(rows[0]["total"]) if rows else 0


def _email(email: str) -> str:
    text = email.strip()
    if not text:
        raise ValidationError("an e-mail address is required")
    return text
