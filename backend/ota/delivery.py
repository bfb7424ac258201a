"""Offers to devices and what devices do with them.

An offer is a retained ``d/<id>/downlink/ota/json`` (the broker hands it to the device right
after CONNACK, subscribed or not) with Blynk's ``url``, ``size``, ``type``, ``ver``, ``build``
plus our ``sha256`` (hex) and ``sig`` (base64 Ed25519, see :mod:`ota.signing`); the URL carries
a download token for that one device. An empty retained message withdraws it: when the device
finishes (any final status) or the shipment ends.

Statuses move only through :func:`ota.next_status`, fed by real signals: the offer, the
download route (request, last byte served), the device's ``info/mcu`` and its ``ota/status``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from backend.devices.data import Publisher, downlink_topic
from backend.ota.targets import target_condition
from broker.topics import Downlink
from ota import (
    AttemptsLimit,
    DeviceFirmware,
    DeviceStatus,
    DownloadTokens,
    FirmwareInfo,
    Report,
    is_installed,
    next_status,
)
from ota.states import ACTIVE, DeviceReport, Event, LimitReached, McuReport, Offered

log = logging.getLogger(__name__)

_COLUMNS = "s.*, f.size, f.sha256, f.md5, f.signature, f.fw_type, f.version, f.build, f.blynk_version, f.info"
SHIPMENT_SQL = f"SELECT {_COLUMNS} FROM ota_shipment s JOIN firmware f ON f.id = s.firmware_id"
_OF_DEVICE_SQL = (
    f"SELECT {_COLUMNS}, od.status, od.origin_version, od.origin_build FROM ota_shipment s "
    "JOIN firmware f ON f.id = s.firmware_id JOIN ota_device od ON od.shipment_id = s.id "
    "WHERE od.device_id = %s AND s.state IN ('live', 'paused') AND od.status = ANY(%s)"
)
_ACTIVE = [s.value for s in ACTIVE]
MAX_DETAIL = 200


async def dict_rows(conn: AsyncConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    """Every row of a query as a dict."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql.encode(), params)
    return await cur.fetchall()


async def dict_row_one(conn: AsyncConnection, sql: str, params: Any = None) -> dict[str, Any] | None:
    """The first row of a query as a dict, or None."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql.encode(), params)
    return await cur.fetchone()


def now_utc() -> datetime:
    """The current time (aware)."""
    return datetime.now(UTC)


def image_of(row: dict[str, Any]) -> FirmwareInfo:
    """The firmware info of a shipment row (joined with its firmware)."""
    return FirmwareInfo(
        version=row["version"],
        fw_type=row["fw_type"],
        build=row["build"],
        blynk=row["blynk_version"],
        pairs=row["info"],
    )


def limit_of(row: dict[str, Any]) -> AttemptsLimit:
    """The attempts limit of a shipment row."""
    return AttemptsLimit(row["attempts_limit"], timedelta(seconds=row["attempts_period"]))


class Delivery:
    """Publishes and withdraws offers and applies device signals to statuses."""

    def __init__(self, pool: AsyncConnectionPool, publisher: Publisher, tokens: DownloadTokens) -> None:
        self.pool = pool
        self.publisher = publisher
        self.tokens = tokens

    # -- offers -------------------------------------------------------------------------------

    def offer_payload(self, shipment: dict[str, Any], device_id: int, now: datetime) -> bytes:
        """The ``downlink/ota/json`` document for one device (its own download token)."""
        expires = int(now.timestamp()) + shipment["device_timeout"] + 300
        token = self.tokens.issue(shipment["id"], device_id, expires)
        doc: dict[str, Any] = {
            "url": f"{shipment['base_url']}/api/ota/download?token={token}",
            "size": shipment["size"],
        }
        for key, column in (("type", "fw_type"), ("ver", "version"), ("build", "build")):
            if shipment[column]:
                doc[key] = shipment[column]
        doc["sha256"] = bytes(shipment["sha256"]).hex()
        doc["sig"] = base64.b64encode(bytes(shipment["signature"])).decode("ascii")
        return json.dumps(doc, separators=(",", ":")).encode()

    async def offer(
        self,
        conn: AsyncConnection,
        shipment: dict[str, Any],
        device_id: int,
        device: DeviceFirmware,
        current: DeviceStatus,
    ) -> bytes | None:
        """Offer the image (again): Request sent, or Download limit reached when the attempts
        of the period are used up. Runs inside the caller's transaction, and returns the offer
        the caller must :meth:`publish` once that transaction has committed (None: not offered).

        Not before: a device downloads the moment the offer reaches it, and the download route
        refuses a device whose status is not yet "Request sent" (committed) in its own
        transaction; an offer published before the commit lost that race under load."""
        now = now_utc()
        row = await (
            await conn.execute(
                "SELECT attempts FROM ota_device WHERE shipment_id = %s AND device_id = %s", (shipment["id"], device_id)
            )
        ).fetchone()
        limit = limit_of(shipment)
        recent = limit.recent(list(row[0]) if row else [], now)
        if not limit.allows(recent, now):
            new = next_status(current, LimitReached()) or current
            await self._set(conn, shipment["id"], device_id, new, f"{limit.count} attempts already made")
            return None
        new = next_status(current, Offered()) or current
        await conn.execute(
            "INSERT INTO ota_device (shipment_id, device_id, status, origin_version, origin_build, attempts, "
            "offered_at, updated_at) VALUES (%(s)s, %(d)s, %(st)s, %(v)s, %(b)s, %(a)s, %(now)s, %(now)s) "
            "ON CONFLICT (shipment_id, device_id) DO UPDATE SET status = %(st)s, attempts = %(a)s, "
            "offered_at = %(now)s, updated_at = %(now)s, bytes_served = 0, detail = '', "
            "origin_version = coalesce(ota_device.origin_version, %(v)s), "
            "origin_build = coalesce(ota_device.origin_build, %(b)s)",
            {
                "s": shipment["id"],
                "d": device_id,
                "st": new.value,
                "v": device.version,
                "b": device.build,
                "a": [*recent, now],
                "now": now,
            },
        )
        return self.offer_payload(shipment, device_id, now)

    def publish(self, device_id: int, offer: bytes) -> None:
        """Publish an offer :meth:`offer` made, after its transaction committed (retained)."""
        self.publisher.publish(downlink_topic(device_id, Downlink.OTA.topic()), offer, qos=1, retain=True)

    def withdraw(self, device_id: int) -> None:
        """Clear the device's retained offer."""
        self.publisher.publish(downlink_topic(device_id, Downlink.OTA.topic()), b"", qos=1, retain=True)

    async def end(self, shipment_id: int, state: str, reason: str) -> bool:
        """Move a live or paused shipment to ``cancelled`` or ``finished`` and withdraw its
        offers; False if it had ended already."""
        async with self.pool.connection() as conn, conn.transaction():
            ended = await (
                await conn.execute(
                    "UPDATE ota_shipment SET state = %s, state_reason = %s, ended_at = now() "
                    "WHERE id = %s AND state IN ('live', 'paused') RETURNING id",
                    (state, reason, shipment_id),
                )
            ).fetchone()
            rows = await (
                await conn.execute(
                    "SELECT device_id FROM ota_device WHERE shipment_id = %s AND status = ANY(%s)",
                    (shipment_id, _ACTIVE),
                )
            ).fetchall()
        if ended is None:
            return False
        for (device_id,) in rows:
            self.withdraw(device_id)
        log.info("shipment %s %s: %s", shipment_id, state, reason)
        return True

    async def waiting(self, shipment: dict[str, Any]) -> int:
        """Targeted devices the shipment has not looked at yet."""
        where, params = target_condition(shipment)
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    f"SELECT count(*) FROM device d WHERE {where} AND NOT EXISTS (SELECT 1 FROM ota_device od "
                    "WHERE od.shipment_id = %(sid)s AND od.device_id = d.id AND od.status <> 'pending')",
                    params,
                )
            ).fetchone()
        return int(row[0]) if row else 0

    # -- signals ------------------------------------------------------------------------------

    async def transition(
        self,
        shipment: dict[str, Any],
        device_id: int,
        event: Event,
        detail: str = "",
        conn: AsyncConnection | None = None,
    ) -> DeviceStatus | None:
        """Apply one event to a device's status (row locked); withdraw the offer when the
        device leaves the active statuses. The new status, or None if nothing changed."""
        if conn is None:
            async with self.pool.connection() as own, own.transaction():
                return await self.transition(shipment, device_id, event, detail, own)
        row = await (
            await conn.execute(
                "SELECT status FROM ota_device WHERE shipment_id = %s AND device_id = %s FOR UPDATE",
                (shipment["id"], device_id),
            )
        ).fetchone()
        if row is None:
            return None
        current = DeviceStatus(row[0])
        new = next_status(current, event)
        if new is None:
            return None
        await self._set(conn, shipment["id"], device_id, new, detail)
        if current.active and not new.active:
            self.withdraw(device_id)
        return new

    async def _set(
        self, conn: AsyncConnection, shipment_id: int, device_id: int, status: DeviceStatus, detail: str
    ) -> None:
        await conn.execute(
            "UPDATE ota_device SET status = %s, detail = %s, updated_at = now() WHERE shipment_id = %s "
            "AND device_id = %s",
            (status.value, detail[:MAX_DETAIL], shipment_id, device_id),
        )

    async def info_mcu(self, device_id: int, info: dict[str, Any]) -> None:
        """A device published ``info/mcu``: success, mismatch, rollback, or a retry after a
        failed attempt."""
        reported = DeviceFirmware(_text(info.get("ver")), _text(info.get("type")), _text(info.get("build")))
        async with self.pool.connection() as conn:
            rows = await dict_rows(conn, _OF_DEVICE_SQL, (device_id, [*_ACTIVE, "success", "upload_failure"]))
        for shipment in rows:
            await self._mcu(shipment, device_id, reported)

    async def _mcu(self, shipment: dict[str, Any], device_id: int, reported: DeviceFirmware) -> None:
        image = image_of(shipment)
        installed = is_installed(image, reported)
        origin = (shipment["origin_version"], shipment["origin_build"])
        is_origin = (reported.version == origin[0]) if origin[0] is not None else reported.build == origin[1]
        type_ok = not (image.fw_type and reported.fw_type and image.fw_type != reported.fw_type)
        status = DeviceStatus(shipment["status"])
        offer: bytes | None = None
        async with self.pool.connection() as conn, conn.transaction():
            if status is DeviceStatus.UPLOAD_FAILURE:
                if installed:  # it made it after all (e.g. after its timeout)
                    await self._set(conn, shipment["id"], device_id, DeviceStatus.SUCCESS, "")
                elif shipment["state"] == "live" and type_ok:
                    offer = await self.offer(conn, shipment, device_id, reported, status)
            else:
                await self.transition(
                    shipment,
                    device_id,
                    McuReport(installed, bool(type_ok), is_origin),
                    f"device reports {reported.version or reported.build or 'no version'}",
                    conn,
                )
        if offer is not None:
            self.publish(device_id, offer)

    async def status(self, device_id: int, payload: bytes) -> str | None:
        """A device published ``ota/status``; an error text for ``downlink/diag``, or None."""
        try:
            doc = json.loads(payload)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            report = Report(doc.get("status"))
        except (ValueError, TypeError):
            return (
                'ota/status: expected {"status": one of '
                + ", ".join(r.value for r in Report)
                + ', "error": text, "bytes": N}'
            )
        detail = _text(doc.get("error"), MAX_DETAIL) or ""
        async with self.pool.connection() as conn:
            rows = await dict_rows(conn, _OF_DEVICE_SQL, (device_id, [*_ACTIVE, "success"]))
        if not rows:
            return "ota/status: no firmware update is in progress for this device"
        for shipment in rows:
            await self.transition(shipment, device_id, DeviceReport(report), detail or f"device: {report.value}")
        return None

    async def shipment(self, shipment_id: int) -> dict[str, Any] | None:
        """A shipment row joined with its firmware."""
        async with self.pool.connection() as conn:
            return await dict_row_one(conn, SHIPMENT_SQL + " WHERE s.id = %s", (shipment_id,))


def _text(value: Any, limit: int = 64) -> str | None:
    return None if value is None else str(value)[:limit]


def unix_now() -> float:
    """Seconds since the epoch (the download tokens' clock)."""
    return time.time()
