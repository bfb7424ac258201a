"""Device tags: free-form labels on devices (``device_tag``, migration 0007), which a Blynk.Air
shipment can target (``backend.ota.rollout``).

A tag is 1 to 64 characters once trimmed, without control characters, and compared exactly
(``Floor 1`` and ``floor 1`` are two tags); a device carries at most 32. ``DeviceTags`` reads
and replaces a device's tags within one principal's scope, the way ``DeviceDirectory`` sees
devices (a device outside it does not exist), and records each change in the audit log. The
module-level functions read and write tags without a principal, for ``openblynk import``.

Errors (``backend.errors``):

    NotFoundError          the device or organization is outside the caller's scope
    PermissionDeniedError  the caller may change only the devices they own, and does not own this one
    ValidationError        a tag breaks a rule (the message names the tag and the rule), or too many tags
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission, Principal
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.db.sql import execute, fetch_all
from backend.devices.directory import DeviceDirectory
from backend.errors import PermissionDeniedError, ValidationError

MAX_TAG_LENGTH = 64
"""Characters in a tag (the ``device_tag`` table checks the same)."""
MAX_TAGS = 32
"""Tags on one device."""


@dataclass(frozen=True, slots=True)
class DeviceTagSet:
    """A device's tags, sorted."""

    device_id: int
    tags: list[str]


@dataclass(frozen=True, slots=True)
class TagUse:
    """A tag in use, and on how many of the caller's visible devices."""

    tag: str
    devices: int


def check_tag(raw: str) -> str:
    """The trimmed tag, or ValidationError saying which rule it breaks."""
    tag = raw.strip()
    if not tag:
        raise ValidationError("a tag cannot be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValidationError(f"tag {tag[:20]!r}... is {len(tag)} characters long; a tag has at most {MAX_TAG_LENGTH}")
    bad = next((c for c in tag if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise ValidationError(f"tag {tag!r} contains the control character U+{ord(bad):04X}; tags are printable text")
    return tag


def check_tags(raw: Iterable[str]) -> list[str]:
    """Every tag checked and trimmed, duplicates dropped, sorted; at most ``MAX_TAGS``."""
    tags = sorted({check_tag(t) for t in raw})
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"a device has at most {MAX_TAGS} tags ({len(tags)} given)")
    return tags


async def tags_of(session: AsyncSession, device_ids: list[int]) -> dict[int, list[str]]:
    """The tags of each of ``device_ids`` that has any, sorted (no scope check)."""
    rows = await fetch_all(
        session,
        'SELECT device_id, tag FROM device_tag WHERE device_id = ANY(:ids) ORDER BY device_id, tag COLLATE "C"',
        ids=device_ids,
    )
    out: dict[int, list[str]] = {}
    for row in rows:
        out.setdefault(int(row["device_id"]), []).append(str(row["tag"]))
    return out


async def store_tags(session: AsyncSession, device_id: int, tags: list[str]) -> tuple[list[str], list[str]]:
    """Make ``tags`` (already checked) the device's tags; answer (added, removed), sorted (no scope check)."""
    before = set((await tags_of(session, [device_id])).get(device_id, []))
    added, removed = sorted(set(tags) - before), sorted(before - set(tags))
    if removed:
        await execute(
            session, "DELETE FROM device_tag WHERE device_id = :d AND tag = ANY(:tags)", d=device_id, tags=removed
        )
    if added:
        await execute(
            session,
            "INSERT INTO device_tag (device_id, tag) SELECT :d, unnest(CAST(:tags AS text[])) ON CONFLICT DO NOTHING",
            d=device_id,
            tags=added,
        )
    return added, removed


class DeviceTags:
    """Tags of the devices one principal sees."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit
        self.directory = DeviceDirectory(session, scope, audit)

    async def of(self, device_id: int) -> DeviceTagSet:
        """A visible device's tags."""
        await self.directory.get(device_id)
        return DeviceTagSet(device_id, (await tags_of(self.session, [device_id])).get(device_id, []))

    async def replace(self, device_id: int, tags: list[str]) -> DeviceTagSet:
        """Give a visible device exactly ``tags`` (``devices.edit``, or owning it with
        ``devices.edit.own``); the change is audited with what was added and removed."""
        device = await self.directory.get(device_id)
        if not self.principal.has(Permission.DEVICES_EDIT) and device.owner_id != self.principal.user_id:
            raise PermissionDeniedError("you may change only the devices you own")
        wanted = check_tags(tags)
        added, removed = await store_tags(self.session, device_id, wanted)
        if added or removed:
            await self.audit.record(
                self.principal, device.org_id, "device.tags_update", "device", device_id, added=added, removed=removed
            )
        return DeviceTagSet(device_id, wanted)

    async def in_use(self, org_id: int | None = None) -> list[TagUse]:
        """Tags on the visible devices (of one organization of the scope, or of all of it), by name."""
        if org_id is not None:
            await self.scope.require_org(org_id)
        where, params = await self.directory.visibility()
        if org_id is not None:
            where, params = f"{where} AND org_id = :org", {**params, "org": org_id}
        rows = await fetch_all(
            self.session,
            "SELECT tag, count(*) AS devices FROM device_tag WHERE device_id IN "
            f"(SELECT id FROM device WHERE {where}) GROUP BY tag "
            'ORDER BY tag COLLATE "C"',
            **params,
        )
        return [TagUse(str(r["tag"]), int(r["devices"])) for r in rows]
