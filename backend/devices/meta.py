"""Device metadata values: read (system and custom fields), written by the device over MQTT
(``meta/<name>``, only device-writable fields) or by the platform (HTTP ``device/meta/update``,
later the console), which also pushes the new value to the device on ``downlink/meta/<name>``.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from backend.devices.data import Publisher, downlink_topic
from backend.devices.registry import DeviceInfo
from backend.errors import ValidationError
from backend.templates.meta import DEVICE_NAME, DEVICE_OWNER, LOCATION, MetaFieldSpec, check_meta_value, parse_lat_lon
from backend.templates.values import db_text, wire_text
from broker.topics import Downlink


class UnknownMetaError(ValidationError):
    """The template has no metadata field of that name or id."""


class ReadOnlyMetaError(ValidationError):
    """The field cannot be written by whoever tried."""


class MetaService:
    """Reads and writes metadata values of devices."""

    def __init__(self, pool: AsyncConnectionPool, publisher: Publisher, max_bytes: int = 1024) -> None:
        self.pool = pool
        self.publisher = publisher
        self.max_bytes = max_bytes

    @staticmethod
    def field(device: DeviceInfo, name: str) -> MetaFieldSpec:
        """The field called ``name``; raises UnknownMetaError."""
        spec = device.meta.get(name)
        if spec is None:
            raise UnknownMetaError(f"no metadata field named {name[:64]!r} in template {device.template_name!r}")
        return spec

    async def value(self, device: DeviceInfo, spec: MetaFieldSpec) -> str:
        """The field's value: stored, else its default, else ``""``."""
        if spec.name == DEVICE_NAME:
            return device.name
        async with self.pool.connection() as conn:
            if spec.name == DEVICE_OWNER:
                row = await (
                    await conn.execute(
                        "SELECT u.email FROM device d JOIN app_user u ON u.id = d.owner_id WHERE d.id = %s",
                        (device.id,),
                    )
                ).fetchone()
            else:
                row = await (
                    await conn.execute(
                        "SELECT value FROM device_meta WHERE device_id = %s AND name = %s", (device.id, spec.name)
                    )
                ).fetchone()
        if row is not None:
            return wire_text(row[0])
        return spec.default_value or ""

    async def set_from_device(self, device: DeviceInfo, name: str, value: str) -> None:
        """A value the device sent on ``meta/<name>``; raises on unknown or read-only fields."""
        spec = self.field(device, name)
        if not spec.device_writable:
            raise ReadOnlyMetaError(f"{spec.name!r} cannot be set by the device")
        await self._store(device, spec, check_meta_value(spec, value, max_bytes=self.max_bytes))

    async def set_from_server(self, device: DeviceInfo, spec: MetaFieldSpec, value: str) -> None:
        """A value set by the platform: store it and push it on ``downlink/meta/<name>``."""
        if spec.derived:
            raise ReadOnlyMetaError(f"{spec.name!r} is derived from the device and cannot be set")
        stored = check_meta_value(spec, value, max_bytes=self.max_bytes)
        await self._store(device, spec, stored)
        self.publisher.publish(downlink_topic(device.id, Downlink.META.topic(spec.name)), stored.encode(), qos=0)

    async def location(self, device: DeviceInfo) -> tuple[float, float] | None:
        """(lat, lon) from the ``Location`` metadata, if set."""
        text = await self.value(device, device.meta[LOCATION]) if LOCATION in device.meta else ""
        if not text:
            return None
        try:
            return parse_lat_lon(text)
        except ValidationError:
            return None

    async def _store(self, device: DeviceInfo, spec: MetaFieldSpec, value: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO device_meta (device_id, name, value, updated_at) VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (device_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
                (device.id, spec.name, db_text(value)),
            )
