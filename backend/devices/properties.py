"""Widget properties per device and datastream (``ds/<name>/prop/<property>``, HTTP
``update/property``): stored until erased.

Blynk documents no downlink for properties (reference §1.4: "No ``downlink/ds/<name>/prop/...``
downlink is documented"): they are read by the apps and the console, not by the device, so a
change is stored and nothing is sent to the device.
"""

from __future__ import annotations

import re

from psycopg_pool import AsyncConnectionPool

from backend.devices.live import LiveFeed
from backend.errors import ValidationError
from backend.templates.values import db_text, wire_text

PROPERTY_NAMES = frozenset(
    "label color onBackColor offBackColor onColor offColor onLabel offLabel labels min max isOnPlay url urls "
    "step valueFormatting suffix maximumFractionDigits opacity scale rotation sortType isDisabled isHidden "
    "icons onImageUrl offImageUrl page sound isMuted loop autoplay contentDesign backColor".split()
)
"""Blynk's widget property names (reference §1.10)."""
MAX_PROPERTY_BYTES = 1024
COLOR_PROPERTIES = frozenset("color onColor offColor onBackColor offBackColor backColor".split())
"""Properties Blynk documents as colours, ``#RRGGBB`` (reference §3: widget properties)."""
_HEX_COLOR = re.compile(r"#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})")


class UnknownPropertyError(ValidationError):
    """Not one of Blynk's widget property names."""


def check_property(name: str, value: str) -> None:
    """Raise ValidationError unless ``name`` is a known property and ``value`` fits: a colour
    property holds a hex colour (``#RGB``, ``#RRGGBB`` or ``#RRGGBBAA``) or nothing, so what
    reaches a page's style is a colour (the pages check it again)."""
    if name not in PROPERTY_NAMES:
        raise UnknownPropertyError(f"unknown property {name[:40]!r}")
    if len(value.encode()) > MAX_PROPERTY_BYTES:
        raise ValidationError(f"property {name} is longer than {MAX_PROPERTY_BYTES} bytes")
    if name in COLOR_PROPERTIES and value and not _HEX_COLOR.fullmatch(value):
        raise ValidationError(f"property {name} must be a colour such as #D3435C, not {value[:40]!r}")


class PropertyService:
    """Stores and erases widget properties."""

    def __init__(self, pool: AsyncConnectionPool, live: LiveFeed | None = None) -> None:
        self.pool = pool
        self.live = live or LiveFeed()

    async def set(self, device_id: int, pin: int, name: str, value: str) -> None:
        """Store a property (multi-values NUL-separated, as sent); raises ValidationError."""
        check_property(name, value)
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO device_property (device_id, pin, property, value, updated_at) "
                "VALUES (%s, %s, %s, %s, now()) ON CONFLICT (device_id, pin, property) "
                "DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
                (device_id, pin, name, db_text(value)),
            )
        self.live.publish(device_id, {"type": "property", "pin": pin, "name": name, "value": value})

    async def erase(self, device_id: int, pin: int, name: str) -> None:
        """Forget a property; raises UnknownPropertyError for a name Blynk does not know."""
        check_property(name, "")
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM device_property WHERE device_id = %s AND pin = %s AND property = %s",
                (device_id, pin, name),
            )
        self.live.publish(device_id, {"type": "property", "pin": pin, "name": name, "value": None})

    async def all(self, device_id: int) -> dict[tuple[int, str], str]:
        """Every stored property of the device, by (pin, name)."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT pin, property, value FROM device_property WHERE device_id = %s", (device_id,)
                )
            ).fetchall()
        return {(pin, name): wire_text(value) for pin, name, value in rows}
