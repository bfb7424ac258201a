"""Where a device is and what time it is there (``get/loc/all``, ``get/utc/all/json``).

The location is the device's Location datastream value when it has one (Blynk stores it as
``lon, lat``), else the Location (``backend/locations``) it is assigned to, else its
``Location`` metadata; the time zone follows
:func:`backend.devices.timezones.resolve_zone`.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from backend.devices.data import DataService
from backend.devices.meta import MetaService
from backend.devices.registry import DeviceInfo
from backend.devices.timezones import TzSources, resolve_zone
from backend.templates.meta import TIME_ZONE
from backend.templates.values import MULTI_SEPARATOR, DatastreamType


async def lat_lon(device: DeviceInfo, data: DataService, meta: MetaService) -> tuple[float, float] | None:
    """(lat, lon) of the device, or None if nothing tells."""
    for pin in sorted(device.by_pin):
        spec = device.by_pin[pin]
        if spec.type is not DatastreamType.LOCATION:
            continue
        latest = await data.latest.get(device.id, pin)
        if latest is not None:
            parts = latest.value.split(MULTI_SEPARATOR)
            if len(parts) == 2:
                try:
                    lon, lat = float(parts[0]), float(parts[1])
                except ValueError:
                    continue
                return lat, lon
    if device.location is not None:
        return device.location
    return await meta.location(device)


def lat_lon_text(point: tuple[float, float]) -> str:
    """``lat,lon`` as ``downlink/loc/all`` sends it."""
    return f"{point[0]!r},{point[1]!r}"


async def device_zone(device: DeviceInfo, data: DataService, meta: MetaService) -> ZoneInfo:
    """The device's time zone: its Location's zone → location → Time Zone metadata → organization → UTC."""
    tz_meta = await meta.value(device, device.meta[TIME_ZONE]) if TIME_ZONE in device.meta else ""
    return resolve_zone(
        TzSources(
            lat_lon=await lat_lon(device, data, meta),
            meta_tz=tz_meta or None,
            org_tz=device.org_tz,
            location_tz=device.location_tz or None,
        )
    )
