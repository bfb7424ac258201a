"""The scheduler job that advances every live shipment: per-device timeouts, the abort rule,
the end of a shipment, then new offers as the pacing allows.

Only the scheduler leader runs it (``backend.scheduler``), so two app replicas never offer
twice. Devices are offered when they are online and have reported their firmware in
``info/mcu`` (a device offline at the start is offered once it connects); the preferred time
window is checked in each device's own time zone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, tzinfo
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backend.ota.delivery import SHIPMENT_SQL, Delivery, dict_rows, image_of, now_utc
from backend.ota.targets import target_condition
from ota import (
    ApplyMode,
    DeviceFirmware,
    DeviceStatus,
    PreferredTime,
    Progress,
    Verdict,
    abort_from_dict,
    pacing_from_dict,
    verdict,
)
from ota.states import ACTIVE, FAILED

log = logging.getLogger(__name__)
ZoneOf = Callable[[int], Awaitable[tzinfo]]
_SCAN_EXTRA = 200  # candidates looked at beyond the budget (some are outside their time window)


class Rollout:
    """Advances shipments; :meth:`tick` is the scheduled job."""

    def __init__(self, pool: AsyncConnectionPool, delivery: Delivery, zone_of: ZoneOf) -> None:
        self.pool = pool
        self.delivery = delivery
        self.zone_of = zone_of

    async def tick(self) -> None:
        """Advance every live or paused shipment once."""
        async with self.pool.connection() as conn:
            shipments = await dict_rows(conn, SHIPMENT_SQL + " WHERE s.state IN ('live', 'paused') ORDER BY s.id")
        for shipment in shipments:
            try:
                await self.advance(shipment)
            except Exception:  # one broken shipment must not stop the others
                log.exception("advancing shipment %s failed", shipment["id"])

    async def advance(self, shipment: dict[str, Any]) -> None:
        """Timeouts, abort rule, end, then new offers."""
        now = now_utc()
        await self._timeouts(shipment)
        progress, unfinished = await self._progress(shipment["id"])
        rule = abort_from_dict(shipment["abort_rule"])
        if rule is not None and rule.triggered(progress):
            await self.delivery.end(
                shipment["id"],
                "cancelled",
                f"aborted: {progress.failed} of {progress.failed + progress.succeeded} "
                f"finished devices failed (limit {rule.failure_percent:g}%)",
            )
            return
        if shipment["target_kind"] == "devices" and unfinished == 0:
            await self.delivery.end(shipment["id"], "finished", "every targeted device is done")
            return
        if shipment["state"] != "live":
            return
        pacing = pacing_from_dict(shipment["pacing"])
        budget = pacing.allowed((now - shipment["created_at"]).total_seconds(), progress) - progress.started
        if budget > 0:
            await self._offer_new(shipment, budget, now)

    async def _timeouts(self, shipment: dict[str, Any]) -> None:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "UPDATE ota_device SET status = %s, detail = %s, updated_at = now() WHERE shipment_id = %s "
                    "AND status = ANY(%s) AND offered_at < now() - make_interval(secs => %s) RETURNING device_id",
                    (
                        DeviceStatus.UPLOAD_FAILURE.value,
                        f"no result within {shipment['device_timeout']} s",
                        shipment["id"],
                        [s.value for s in ACTIVE],
                        shipment["device_timeout"],
                    ),
                )
            ).fetchall()
        for (device_id,) in rows:
            self.delivery.withdraw(device_id)

    async def _progress(self, shipment_id: int) -> tuple[Progress, int]:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*) FILTER (WHERE offered_at IS NOT NULL), count(*) FILTER (WHERE status = 'success'), "
                    "count(*) FILTER (WHERE offered_at IS NOT NULL AND status = ANY(%s)), "
                    "count(*) FILTER (WHERE status = ANY(%s)) FROM ota_device WHERE shipment_id = %s",
                    ([s.value for s in FAILED], [s.value for s in (*ACTIVE, DeviceStatus.PENDING)], shipment_id),
                )
            ).fetchone()
        assert row is not None
        return Progress(started=row[0], succeeded=row[1], failed=row[2]), row[3]

    async def _offer_new(self, shipment: dict[str, Any], budget: int, now: datetime) -> None:
        where, params = target_condition(shipment)
        async with self.pool.connection() as conn:
            candidates = await (
                await conn.execute(
                    f"SELECT d.id, d.fw_version, d.fw_type, d.fw_build, od.status FROM device d "
                    f"LEFT JOIN ota_device od ON od.shipment_id = %(sid)s AND od.device_id = d.id "
                    f"WHERE {where} AND d.online AND (d.fw_version IS NOT NULL OR d.fw_build IS NOT NULL) "
                    "AND (od.status IS NULL OR od.status = 'pending') AND NOT EXISTS (SELECT 1 FROM ota_device o2 "
                    "JOIN ota_shipment s2 ON s2.id = o2.shipment_id WHERE o2.device_id = d.id AND s2.id <> %(sid)s "
                    "AND s2.state IN ('live', 'paused') AND o2.status = ANY(%(active)s)) ORDER BY d.id LIMIT %(n)s",
                    {**params, "active": [s.value for s in ACTIVE], "n": budget + _SCAN_EXTRA},
                )
            ).fetchall()
        mode, image = ApplyMode(shipment["apply_mode"]), image_of(shipment)
        window = PreferredTime(shipment["preferred_time"])
        for device_id, version, fw_type, build, _status in candidates:
            if budget <= 0:
                return
            device = DeviceFirmware(version, fw_type, build)
            found = verdict(mode, image, device)
            if found is not Verdict.UPDATE:
                await self._mismatch(shipment["id"], device_id, found, device)
                continue
            if window is not PreferredTime.ANY and not window.allows(now, await self.zone_of(device_id)):
                continue
            async with self.pool.connection() as conn, conn.transaction():
                offer = await self.delivery.offer(conn, shipment, device_id, device, DeviceStatus.PENDING)
            if offer is not None:
                self.delivery.publish(device_id, offer)
            budget -= 1

    async def _mismatch(self, shipment_id: int, device_id: int, found: Verdict, device: DeviceFirmware) -> None:
        status = DeviceStatus.TYPE_MISMATCH if found is Verdict.TYPE_MISMATCH else DeviceStatus.VERSION_MISMATCH
        detail = (
            f"device type {device.fw_type}"
            if found is Verdict.TYPE_MISMATCH
            else f"device runs {device.version or device.build}"
        )
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO ota_device (shipment_id, device_id, status, detail, origin_version, origin_build) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (shipment_id, device_id) DO UPDATE SET "
                "status = EXCLUDED.status, detail = EXCLUDED.detail, updated_at = now()",
                (shipment_id, device_id, status.value, detail, device.version, device.build),
            )
