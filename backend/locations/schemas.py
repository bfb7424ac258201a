"""Wire types of ``/api/locations``."""

from __future__ import annotations

import msgspec

from backend.locations.services import Location, LocationDevice

LocationOut = Location
LocationDeviceOut = LocationDevice


class LocationIn(msgspec.Struct):
    """A location as a client sends it (``org_id``: the caller's organization by default)."""

    name: str
    lat: float
    lon: float
    address: str = ""
    time_zone: str = ""
    org_id: int | None = None


class DevicesIn(msgspec.Struct):
    """The devices at a location: every one listed is assigned to it, any other it had is unassigned."""

    device_ids: list[int]
