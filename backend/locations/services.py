"""Locations of the organizations in one principal's scope.

A location belongs to one organization; a device of that organization may be assigned to at
most one location (``device.location_id``, cleared when the location is deleted). A location's
time zone is an IANA name, or empty for "the zone at its coordinates" (when ``tzfpy`` is
installed; otherwise devices fall back to their own settings). A device's place and time zone
follow its location (``backend.devices.place``): each change tells the processes' device caches
with a ``device`` change notice. Every change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_all, fetch_one, fetch_unique
from backend.devices.timezones import zone_for
from backend.errors import NotFoundError, ValidationError

MAX_NAME, MAX_ADDRESS = 100, 300
_COLUMNS = (
    "l.id, l.org_id, l.name, l.address, l.lat, l.lon, l.time_zone, "
    "(SELECT count(*) FROM device d WHERE d.location_id = l.id) AS devices"
)


@dataclass(frozen=True, slots=True)
class Location:
    """A named place and how many devices are assigned to it."""

    id: int
    org_id: int
    name: str
    address: str
    lat: float
    lon: float
    time_zone: str
    devices: int


@dataclass(frozen=True, slots=True)
class LocationDevice:
    """A device of the location's organization, and whether it is at this location."""

    id: int
    name: str
    here: bool


@dataclass(frozen=True, slots=True)
class Place:
    """What a client may set on a location (checked)."""

    name: str
    address: str
    lat: float
    lon: float
    time_zone: str

    def __post_init__(self) -> None:
        if not 1 <= len(self.name.strip()) <= MAX_NAME:
            raise ValidationError(f"a location's name has 1 to {MAX_NAME} characters")
        if len(self.address) > MAX_ADDRESS:
            raise ValidationError(f"an address has at most {MAX_ADDRESS} characters")
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise ValidationError("latitude is -90..90 and longitude -180..180")
        if self.time_zone and zone_for(self.time_zone) is None:
            raise ValidationError(f"unknown time zone {self.time_zone[:64]!r} (an IANA name such as Europe/Riga)")

    def params(self) -> dict[str, Any]:
        return {
            "name": self.name.strip(),
            "address": self.address.strip(),
            "lat": self.lat,
            "lon": self.lon,
            "tz": self.time_zone,
        }


class LocationService:
    """Locations as the signed-in user may see and change them."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit

    async def _tell(self, where: str, **params: Any) -> None:
        """Send a ``device`` change notice for each device ``where`` selects."""
        rows = await fetch_all(self.session, f"SELECT id FROM device WHERE {where}", **params)  # noqa: S608
        for row in rows:
            await notify(self.session, Change("device", int(row["id"])))

    async def listing(self, org_id: int | None = None) -> list[Location]:
        """Locations of one organization of the scope, or of all of it, by name."""
        if org_id is not None:
            await self.scope.require_org(org_id)
        orgs = [org_id] if org_id is not None else sorted(await self.scope.org_ids())
        rows = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS} FROM location l WHERE l.org_id = ANY(:orgs) ORDER BY l.name, l.id",
            orgs=orgs,
        )
        return [Location(**r) for r in rows]

    async def get(self, location_id: int) -> Location:
        """One location of the scope (another's is answered as missing)."""
        row = await fetch_one(self.session, f"SELECT {_COLUMNS} FROM location l WHERE l.id = :id", id=location_id)
        if row is None or row["org_id"] not in await self.scope.org_ids():
            raise NotFoundError("location not found")
        return Location(**row)

    async def create(self, org_id: int | None, place: Place) -> Location:
        """A new location of ``org_id`` (the caller's organization by default)."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        row = await fetch_unique(
            self.session,
            """INSERT INTO location (org_id, name, address, lat, lon, time_zone)
               VALUES (:org, :name, :address, :lat, :lon, :tz) RETURNING id""",
            "the organization already has a location with this name",
            org=org,
            **place.params(),
        )
        await self.audit.record(self.principal, org, "location.create", "location", row["id"], name=place.name)
        return await self.get(int(row["id"]))

    async def update(self, location_id: int, place: Place) -> Location:
        """Change a location's name, address, coordinates or time zone."""
        found = await self.get(location_id)
        await fetch_unique(
            self.session,
            """UPDATE location SET name = :name, address = :address, lat = :lat, lon = :lon, time_zone = :tz
               WHERE id = :id RETURNING id""",
            "the organization already has a location with this name",
            id=location_id,
            **place.params(),
        )
        await self._tell("location_id = :loc", loc=location_id)
        await self.audit.record(
            self.principal, found.org_id, "location.update", "location", location_id, name=place.name
        )
        return await self.get(location_id)

    async def delete(self, location_id: int) -> None:
        """Delete a location; its devices are no longer assigned to any."""
        found = await self.get(location_id)
        await self._tell("location_id = :loc", loc=location_id)
        await execute(self.session, "DELETE FROM location WHERE id = :id", id=location_id)
        await self.audit.record(
            self.principal, found.org_id, "location.delete", "location", location_id, name=found.name
        )

    async def devices(self, location_id: int) -> list[LocationDevice]:
        """The devices of the location's organization, by name, each marked if it is here."""
        found = await self.get(location_id)
        rows = await fetch_all(
            self.session,
            "SELECT id, name, location_id IS NOT DISTINCT FROM :loc AS here FROM device "
            "WHERE org_id = :org ORDER BY name, id",
            loc=location_id,
            org=found.org_id,
        )
        return [LocationDevice(int(r["id"]), r["name"], bool(r["here"])) for r in rows]

    async def assign(self, location_id: int, device_ids: list[int]) -> Location:
        """Make ``device_ids`` (devices of the location's organization) the location's devices."""
        found = await self.get(location_id)
        wanted = sorted(set(device_ids))
        if len(wanted) > 10_000:
            raise ValidationError("at most 10000 devices at once")
        rows = await fetch_all(
            self.session, "SELECT id FROM device WHERE id = ANY(:ids) AND org_id = :org", ids=wanted, org=found.org_id
        )
        if len(rows) != len(wanted):
            raise NotFoundError("device not found (a location takes devices of its own organization)")
        await self._tell("location_id = :loc OR id = ANY(:ids)", loc=location_id, ids=wanted)
        await execute(
            self.session,
            "UPDATE device SET location_id = NULL WHERE location_id = :loc AND NOT (id = ANY(:ids))",
            loc=location_id,
            ids=wanted,
        )
        await execute(
            self.session, "UPDATE device SET location_id = :loc WHERE id = ANY(:ids)", loc=location_id, ids=wanted
        )
        await self.audit.record(
            self.principal, found.org_id, "location.devices", "location", location_id, device_ids=wanted
        )
        return await self.get(location_id)
