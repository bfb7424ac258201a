"""Ingest: turn what devices publish into stored values, device state and replies.

Handles (v1): ``d/<id>/ds/<name>`` values, ``d/<id>/info/mcu``, ``d/<id>/get/ds`` and
``d/<id>/get/ds/all``, and presence from ``sys/presence/<id>``. Anything wrong is reported to
the device on ``downlink/diag`` and never stops the ingest.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backend.devices.data import DataService, downlink_topic
from backend.devices.registry import DeviceInfo, DeviceRegistry
from backend.errors import ValidationError
from backend.ingest.mqtt import Message

log = logging.getLogger(__name__)

SUBSCRIPTIONS = ["d/+/ds/#", "d/+/info/mcu", "d/+/get/#", "d/+/batch_ds", "d/+/event/#", "d/+/meta/#",
                 "d/+/ota/status", "sys/presence/+"]
MAX_DIAG_NAME = 64


class IngestService:
    """Dispatches broker messages to the right handler."""

    def __init__(self, registry: DeviceRegistry, data: DataService, pool: AsyncConnectionPool) -> None:
        self.registry = registry
        self.data = data
        self.pool = pool
        self.processed = 0

    async def handle(self, msg: Message) -> None:
        """Process one message; never raises."""
        try:
            await self._dispatch(msg)
        except Exception:
            log.exception("ingest failed for %s", msg.topic)
        self.processed += 1

    async def _dispatch(self, msg: Message) -> None:
        parts = msg.topic.split("/")
        if parts[0] == "sys" and len(parts) == 3 and parts[1] == "presence":
            await self._presence(int(parts[2]), msg.payload)
            return
        if parts[0] != "d" or len(parts) < 3 or not parts[1].isdigit():
            return
        device = await self.registry.get(int(parts[1]))
        if device is None:
            return
        family, rest = parts[2], parts[3:]
        if family == "ds" and len(rest) == 1:
            await self._value(device, rest[0], msg.payload)
        elif family == "info" and rest == ["mcu"]:
            await self._info_mcu(device, msg.payload)
        elif family == "get" and rest == ["ds"]:
            await self._get_ds(device, msg.payload)
        elif family == "get" and rest == ["ds", "all"]:
            await self._get_ds_all(device)
        else:  # a Blynk uplink topic this server version does not handle yet: say so
            self.data.diag(device.id, f"{'/'.join(parts[2:])[:MAX_DIAG_NAME]}: not supported by this server yet")

    async def _value(self, device: DeviceInfo, name: str, payload: bytes) -> None:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            self.data.diag(device.id, f"ds/{name[:MAX_DIAG_NAME]}: value is not UTF-8 text")
            return
        try:
            spec = self.data.spec_by_name(device, name)
            await self.data.record(device, spec, text)
        except ValidationError as exc:
            self.data.diag(device.id, f"ds/{name[:MAX_DIAG_NAME]}: {exc.message}")

    async def _info_mcu(self, device: DeviceInfo, payload: bytes) -> None:
        try:
            info: Any = json.loads(payload)
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.data.diag(device.id, f"info/mcu: expected a JSON object ({exc})")
            return

        def field(key: str, limit: int = 64) -> str | None:
            value = info.get(key)
            return None if value is None else str(value)[:limit]

        rx = info.get("rxbuff")
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE device SET fw_version = %s, fw_build = %s, fw_type = %s, board_template_id = %s, "
                "blynk_version = %s, rx_buffer = %s, last_seen = now() WHERE id = %s",
                (field("ver"), field("build"), field("type"), field("tmpl"), field("blynk"),
                 rx if isinstance(rx, int) and 0 < rx < 1 << 20 else None, device.id))

    async def _get_ds(self, device: DeviceInfo, payload: bytes) -> None:
        names = [n for n in payload.decode("utf-8", "replace").split(",") if n]
        for name in names:
            spec = device.by_name.get(name)
            if spec is None:
                self.data.diag(device.id, f"get/ds: no datastream named {name[:MAX_DIAG_NAME]!r}")
                continue
            await self._send_current(device, spec.name, spec.pin)

    async def _get_ds_all(self, device: DeviceInfo) -> None:
        for spec in device.by_name.values():
            if spec.sync:
                await self._send_current(device, spec.name, spec.pin)

    async def _send_current(self, device: DeviceInfo, name: str, pin: int) -> None:
        value = await self.data.current(device, device.by_pin[pin])
        if value is not None:
            self.data.publisher.publish(downlink_topic(device.id, f"downlink/ds/{name}"), value.encode())

    async def _presence(self, device_id: int, payload: bytes) -> None:
        try:
            info = json.loads(payload)
            online = bool(info["online"])
            at = datetime.fromtimestamp(int(info.get("ts", 0)) / 1000, tz=timezone.utc)
        except (ValueError, KeyError, TypeError):
            log.warning("malformed presence for device %s", device_id)
            return
        async with self.pool.connection() as conn:
            if online:
                await conn.execute(
                    "UPDATE device SET online = true, ip = %s, client_id = %s, keep_alive = %s, connected_at = %s, "
                    "last_seen = %s WHERE id = %s AND (connected_at IS NULL OR connected_at <= %s)",
                    (info.get("ip"), info.get("client_id"), info.get("keep_alive"), at, at, device_id, at))
            else:
                await conn.execute(
                    "UPDATE device SET online = false, disconnected_at = %s, last_seen = %s "
                    "WHERE id = %s AND (connected_at IS NULL OR connected_at <= %s)",
                    (at, at, device_id, at))
