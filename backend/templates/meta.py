"""Metadata fields: Blynk's system fields, custom field types and value checking (pure).

Every template has Blynk's five system fields; custom fields come from the template's
``metadata`` list. A device may write over MQTT (``meta/<name>``) only the fields Blynk lets
devices set: the system fields ``Time Zone`` and ``Hotspot Name`` and custom fields of type
text, number, table, IMEI and ICCID (reference §3.4). ``field_id`` is the number the HTTP API's
``metaFieldId`` names: 1..5 for the system fields, 10 and up for custom fields.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from backend.errors import ValidationError

DEVICE_NAME = "Device Name"
DEVICE_OWNER = "Device Owner"
TIME_ZONE = "Time Zone"
LOCATION = "Location"
HOTSPOT_NAME = "Hotspot Name"

DEVICE_WRITABLE_TYPES = frozenset({"text", "number", "table", "imei", "iccid"})
FIRST_CUSTOM_ID = 10


@dataclass(frozen=True, slots=True)
class MetaFieldSpec:
    """A metadata field as the device API sees it."""

    field_id: int
    name: str
    type: str
    default_value: str | None = None
    device_writable: bool = False
    system: bool = False
    derived: bool = False
    """True for fields computed from the device row (``Device Name``, ``Device Owner``)."""


SYSTEM_FIELDS: tuple[MetaFieldSpec, ...] = (
    MetaFieldSpec(1, DEVICE_NAME, "device_name", system=True, derived=True),
    MetaFieldSpec(2, DEVICE_OWNER, "device_owner", system=True, derived=True),
    MetaFieldSpec(3, TIME_ZONE, "time_zone", device_writable=True, system=True),
    MetaFieldSpec(4, LOCATION, "location", system=True),
    MetaFieldSpec(5, HOTSPOT_NAME, "hotspot_name", device_writable=True, system=True),
)
SYSTEM_NAMES = frozenset(f.name for f in SYSTEM_FIELDS)


def custom_spec(field_id: int, name: str, type_: str, default_value: str | None) -> MetaFieldSpec:
    """The spec of a custom field row."""
    return MetaFieldSpec(field_id, name, type_, default_value, device_writable=type_ in DEVICE_WRITABLE_TYPES)


def check_meta_value(spec: MetaFieldSpec, value: str, *, max_bytes: int = 1024) -> str:
    """The value to store for ``spec``; raises ValidationError with a message for the sender."""
    if "\x00" in value and spec.type not in ("table", "list"):
        raise ValidationError("value must not contain NUL")
    if len(value.encode()) > max_bytes:
        raise ValidationError(f"value is longer than {max_bytes} bytes")
    if spec.type == "number" and value != "":
        try:
            number = float(value)
        except ValueError:
            raise ValidationError(f"expects a number, got {value[:40]!r}") from None
        if not math.isfinite(number):
            raise ValidationError(f"expects a finite number, got {value[:40]!r}")
    if spec.type == "location" and value != "":
        lat, lon = parse_lat_lon(value)
        return f"{lat!r},{lon!r}"
    return value


_LATLON = re.compile(r"^\s*(-?[\d.]+)\s*[, ]\s*(-?[\d.]+)\s*$")


def parse_lat_lon(text: str) -> tuple[float, float]:
    """``"56.95,24.1"`` or ``"56.95 24.1"`` → (lat, lon); raises ValidationError."""
    match = _LATLON.match(text)
    try:
        if not match:
            raise ValueError
        lat, lon = float(match[1]), float(match[2])
    except ValueError:
        raise ValidationError(f"expects 'lat,lon', got {text[:40]!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationError(f"coordinates out of range ({lat}, {lon})")
    return lat, lon
