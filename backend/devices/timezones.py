"""Time zones of devices: resolution and the ``downlink/utc/all/json`` document (pure).

Resolution order (reference §1.6): the time zone of the Location the device is assigned to (when
it names one), the device's location (lat/lon → zone with ``tzfpy`` when installed), its
``Time Zone`` metadata, its organization's zone, then UTC. A name that is not a
known IANA zone is skipped, not an error.

``tz_rule`` is the POSIX TZ string, read from the footer line of the zone's TZif file (the
system zoneinfo directories, or the ``tzdata`` package), e.g. ``AST4ADT,M3.2.0,M11.1.0``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TzSources:
    """What the device and its organization tell about its zone."""

    lat_lon: tuple[float, float] | None = None
    meta_tz: str | None = None
    org_tz: str | None = None
    location_tz: str | None = None


def zone_for(name: str | None) -> ZoneInfo | None:
    """The zone called ``name``, or None if it is empty or unknown."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError, OSError):
        return None


def zone_at(lat: float, lon: float) -> str | None:
    """The IANA zone at a point, or None (also when ``tzfpy`` is not installed)."""
    try:
        import tzfpy
    except ImportError:  # optional dependency: location-based zones need it
        log.debug("tzfpy is not installed: location-based time zones are off")
        return None
    name = tzfpy.get_tz(lon, lat)
    return name or None


def resolve_zone(sources: TzSources) -> ZoneInfo:
    """The device's zone: its Location's zone → location → Time Zone metadata → organization → UTC."""
    candidates = [sources.location_tz]
    if sources.lat_lon is not None:
        candidates.append(zone_at(*sources.lat_lon))
    candidates += [sources.meta_tz, sources.org_tz]
    for name in candidates:
        zone = zone_for(name)
        if zone is not None:
            return zone
    return ZoneInfo("UTC")


@lru_cache(maxsize=512)
def posix_rule(name: str) -> str:
    """The POSIX TZ string of a zone (the TZif footer), or ``""`` if none can be found."""
    for base in TZPATH:
        path = Path(base) / name
        if path.is_file():
            return _footer(path.read_bytes())
    try:
        return _footer(resources.files("tzdata.zoneinfo").joinpath(name).read_bytes())
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return ""


def _footer(data: bytes) -> str:
    """The last newline-enclosed line of a TZif (v2+) file."""
    if not data.startswith(b"TZif") or not data.endswith(b"\n"):
        return ""
    start = data.rfind(b"\n", 0, len(data) - 1)
    return data[start + 1 : -1].decode("ascii", "replace") if start >= 0 else ""


def utc_document(zone: ZoneInfo, now: datetime) -> dict[str, object]:
    """The ``downlink/utc/all/json`` document for ``zone`` at ``now`` (an aware datetime)."""
    local = now.astimezone(zone)
    total = local.utcoffset() or timedelta(0)
    dst = local.dst() or timedelta(0)
    return {
        "tz_name": zone.key,
        "tz_rule": posix_rule(zone.key),
        "tz_offset": int((total - dst).total_seconds() // 60),
        "dst_offset": int(dst.total_seconds() // 60),
        "time": (now - _EPOCH) // timedelta(milliseconds=1),
        "iso8601": local.replace(microsecond=0).isoformat(),
    }


def utc_payload(zone: ZoneInfo, now: datetime | None = None) -> bytes:
    """The document as Blynk sends it: compact JSON, keys in the documented order."""
    document = utc_document(zone, now or datetime.now(UTC))
    return json.dumps(document, separators=(",", ":")).encode()
