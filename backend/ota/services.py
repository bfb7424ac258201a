"""Firmware images and shipments: upload, list, create, pause, resume, cancel, delete.

Every call works in one organization, the caller's (the routes pass it); rows of another
organization are answered as missing.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from backend.errors import ConflictError, NotFoundError, ValidationError
from backend.ota.delivery import Delivery, dict_row_one, dict_rows
from backend.ota.schemas import Firmware, Shipment, ShipmentCreate, ShipmentDevice
from backend.ota.storage import FirmwareFiles
from ota import (
    ApplyMode,
    AttemptsLimit,
    DeviceStatus,
    DeviceTimeout,
    FirmwareError,
    FirmwareInfo,
    OtaError,
    PreferredTime,
    Signer,
    Target,
    TargetKind,
    abort_from_dict,
    check_mode,
    pacing_from_dict,
)

EXTENSIONS = (".bin", ".tar")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def firmware_info(row: dict[str, Any]) -> FirmwareInfo:
    """The info tag of a stored firmware row."""
    return FirmwareInfo(
        version=row["version"],
        fw_type=row["fw_type"],
        build=row["build"],
        blynk=row["blynk_version"],
        pairs=row["info"],
    )


def _firmware(row: dict[str, Any]) -> Firmware:
    return Firmware(
        id=row["id"],
        filename=row["filename"],
        size=row["size"],
        sha256=bytes(row["sha256"]).hex(),
        md5=bytes(row["md5"]).hex(),
        signature=base64.b64encode(bytes(row["signature"])).decode(),
        fw_type=row["fw_type"],
        version=row["version"],
        build=row["build"],
        blynk_version=row["blynk_version"],
        info=row["info"],
        created_at=_iso(row["created_at"]),
    )


class FirmwareService:
    """Uploaded images (``firmware`` rows, files stored by SHA-256)."""

    def __init__(self, pool: AsyncConnectionPool, files: FirmwareFiles, signer: Signer, max_bytes: int) -> None:
        self.pool = pool
        self.files = files
        self.signer = signer
        self.max_bytes = max_bytes

    async def upload(
        self, org_id: int, filename: str, content_length: int | None, body: AsyncIterator[bytes]
    ) -> Firmware:
        """Stream, hash, parse and sign an image; an identical image already uploaded by this
        organization is returned as it is."""
        name = _UNSAFE.sub("_", filename.rsplit("/", 1)[-1]).strip("._")[:100]
        if not name.lower().endswith(EXTENSIONS):
            raise ValidationError("firmware must be a .bin or .tar file (give ?filename=name.bin)")
        if content_length is not None and content_length > self.max_bytes:
            raise ValidationError(f"the firmware is larger than the limit of {self.max_bytes} bytes")
        try:
            tmp, digest = await self.files.receive(body, self.max_bytes)
        except FirmwareError as exc:
            raise ValidationError(exc.message) from None
        info = digest.info or FirmwareInfo()
        self.files.keep(tmp, digest)
        signature = self.signer.sign(digest.sha256, digest.size, info.fw_type, info.version)
        async with self.pool.connection() as conn:
            row = await dict_row_one(
                conn,
                "INSERT INTO firmware (org_id, filename, size, sha256, md5, signature, fw_type, version, build, "
                "blynk_version, info) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (org_id, sha256) DO UPDATE SET filename = firmware.filename RETURNING *",
                (
                    org_id,
                    name,
                    digest.size,
                    digest.sha256,
                    digest.md5,
                    signature,
                    info.fw_type,
                    info.version,
                    info.build,
                    info.blynk,
                    json.dumps(dict(info.pairs)),
                ),
            )
        assert row is not None
        return _firmware(row)

    async def list_all(self, org_id: int) -> list[Firmware]:
        """Every image of the organization, newest first."""
        async with self.pool.connection() as conn:
            rows = await dict_rows(conn, "SELECT * FROM firmware WHERE org_id = %s ORDER BY id DESC", (org_id,))
        return [_firmware(r) for r in rows]

    async def row(self, org_id: int, firmware_id: int) -> dict[str, Any]:
        """One image's row; raises NotFoundError."""
        async with self.pool.connection() as conn:
            row = await dict_row_one(
                conn, "SELECT * FROM firmware WHERE id = %s AND org_id = %s", (firmware_id, org_id)
            )
        if row is None:
            raise NotFoundError(f"no firmware {firmware_id}")
        return row

    async def get(self, org_id: int, firmware_id: int) -> Firmware:
        """One image."""
        return _firmware(await self.row(org_id, firmware_id))

    async def delete(self, org_id: int, firmware_id: int) -> None:
        """Delete an image no shipment uses (its file goes when no organization uses it)."""
        sha = bytes((await self.row(org_id, firmware_id))["sha256"])
        async with self.pool.connection() as conn:
            try:
                await conn.execute("DELETE FROM firmware WHERE id = %s", (firmware_id,))
            except (psycopg.errors.RestrictViolation, psycopg.errors.ForeignKeyViolation):  # ON DELETE RESTRICT: 23001
                raise ConflictError("this firmware is used by a shipment; delete the shipment first") from None
            left = await (await conn.execute("SELECT 1 FROM firmware WHERE sha256 = %s", (sha,))).fetchone()
        if left is None:
            self.files.remove(sha.hex())


class ShipmentService:
    """Shipments and the status of their devices."""

    def __init__(
        self, pool: AsyncConnectionPool, firmware: FirmwareService, delivery: Delivery, public_url: str
    ) -> None:
        self.pool = pool
        self.firmware = firmware
        self.delivery = delivery
        self.public_url = public_url.rstrip("/")

    async def create(self, org_id: int, spec: ShipmentCreate, request_base: str) -> Shipment:
        """Check every setting, then start the shipment live (the scheduler paces it)."""
        fw = await self.firmware.row(org_id, spec.firmware_id)
        target = await self._target(org_id, spec.target)
        try:
            mode = ApplyMode(spec.apply_mode)
            window = PreferredTime(spec.preferred_time)
        except ValueError:
            raise ValidationError(
                "apply_mode is lower_version, earlier_build or another_build; preferred_time "
                "is any, night, morning, afternoon or evening"
            ) from None
        name = spec.name.strip()
        if not 1 <= len(name) <= 40:
            raise ValidationError("a shipment name has 1..40 characters")
        try:
            check_mode(mode, firmware_info(fw))
            limit = AttemptsLimit(spec.attempts_limit, timedelta(hours=spec.attempts_period_hours))
            pacing, abort = pacing_from_dict(spec.pacing), abort_from_dict(spec.abort)
            timeout = DeviceTimeout(spec.device_timeout_seconds)
        except (OtaError, OverflowError) as exc:
            raise ValidationError(getattr(exc, "message", str(exc))) from None
        async with self.pool.connection() as conn, conn.transaction():
            try:
                row = await (
                    await conn.execute(
                        "INSERT INTO ota_shipment (org_id, name, firmware_id, target_kind, target_template, target_org, "
                        "target_tag, apply_mode, preferred_time, attempts_limit, attempts_period, pacing, abort_rule, "
                        "device_timeout, base_url) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                        "RETURNING id",
                        (
                            org_id,
                            name,
                            fw["id"],
                            target.kind.value,
                            target.template_id,
                            target.org_id,
                            target.tag,
                            mode.value,
                            window.value,
                            limit.count,
                            int(limit.period.total_seconds()),
                            json.dumps(pacing.to_dict()),
                            json.dumps(abort.to_dict()) if abort else None,
                            timeout.seconds,
                            self.public_url or request_base.rstrip("/"),
                        ),
                    )
                ).fetchone()
            except psycopg.errors.UniqueViolation:
                raise ConflictError(f"a shipment named {name!r} exists already") from None
            assert row is not None
            if target.kind is TargetKind.DEVICES:
                await conn.cursor().executemany(
                    "INSERT INTO ota_device (shipment_id, device_id, status) VALUES (%s, %s, %s)",
                    [(row[0], d, DeviceStatus.PENDING.value) for d in target.device_ids],
                )
        return await self.get(org_id, row[0])

    async def _target(self, org_id: int, doc: dict[str, Any]) -> Target:
        try:
            kind = TargetKind(doc.get("kind"))
            ids = doc.get("device_ids") or ()
            target = Target(
                kind,
                template_id=_int_or_none(doc.get("template_id")),
                org_id=_int_or_none(doc.get("org_id")),
                tag=doc.get("tag"),
                device_ids=tuple(int(i) for i in ids) if isinstance(ids, list) else (),
            )
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"target: kind is template, devices, org or tag with its id(s) ({exc})") from None
        except OtaError as exc:
            raise ValidationError(exc.message) from None
        async with self.pool.connection() as conn:
            if kind is TargetKind.TEMPLATE:
                found = await (
                    await conn.execute(
                        "SELECT 1 FROM template WHERE id = %s AND org_id = %s", (target.template_id, org_id)
                    )
                ).fetchone()
                if found is None:
                    raise ValidationError(f"no template {target.template_id}")
            elif kind is TargetKind.ORG:
                found = await (await conn.execute(_IN_SUBTREE, (org_id, target.org_id))).fetchone()
                if found is None:
                    raise ValidationError(f"no organization {target.org_id} in this organization")
            elif kind is TargetKind.DEVICES:
                rows = await (
                    await conn.execute(
                        "SELECT id FROM device WHERE id = ANY(%s) AND org_id IN (" + _SUBTREE + ")",
                        (list(target.device_ids), org_id),
                    )
                ).fetchall()
                missing = set(target.device_ids) - {r[0] for r in rows}
                if missing:
                    raise ValidationError(f"no devices {sorted(missing)[:10]}")
        return target

    async def list_all(self, org_id: int) -> list[Shipment]:
        """Every shipment of the organization, newest first."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute("SELECT id FROM ota_shipment WHERE org_id = %s ORDER BY id DESC", (org_id,))
            ).fetchall()
        return [await self.get(org_id, r[0]) for r in rows]

    async def get(self, org_id: int, shipment_id: int) -> Shipment:
        """A shipment with its counts per status; raises NotFoundError."""
        async with self.pool.connection() as conn:
            row = await dict_row_one(
                conn, "SELECT * FROM ota_shipment WHERE id = %s AND org_id = %s", (shipment_id, org_id)
            )
            if row is None:
                raise NotFoundError(f"no shipment {shipment_id}")
            counts = {
                r[0]: r[1]
                for r in await (
                    await conn.execute(
                        "SELECT status, count(*) AS n FROM ota_device WHERE shipment_id = %s GROUP BY status",
                        (shipment_id,),
                    )
                ).fetchall()
            }
        waiting = await self.delivery.waiting(row)
        return _shipment(row, counts, waiting)

    async def devices(
        self, org_id: int, shipment_id: int, status: str | None = None, limit: int | None = None
    ) -> list[ShipmentDevice]:
        """The status of every device the shipment looked at (only those in ``status`` when
        given; the first ``limit`` by device id when given)."""
        await self.get(org_id, shipment_id)
        if status is not None and status not in {s.value for s in DeviceStatus}:
            raise ValidationError(f"status must be one of {', '.join(s.value for s in DeviceStatus)}")
        if limit is not None and limit < 1:
            raise ValidationError("limit must be at least 1")
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT od.device_id, d.name, od.status, cardinality(od.attempts), od.bytes_served, od.detail, "
                    "od.updated_at FROM ota_device od JOIN device d ON d.id = od.device_id WHERE od.shipment_id = %s "
                    "AND (%s::text IS NULL OR od.status = %s) ORDER BY od.device_id LIMIT %s",
                    (shipment_id, status, status, limit),
                )
            ).fetchall()
        return [
            ShipmentDevice(
                device_id=r[0],
                device_name=r[1],
                status=r[2],
                label=DeviceStatus(r[2]).label,
                attempts=r[3],
                bytes_served=r[4],
                detail=r[5],
                updated_at=_iso(r[6]),
            )
            for r in rows
        ]

    async def set_state(self, org_id: int, shipment_id: int, action: str) -> Shipment:
        """``pause`` (no new devices; running ones finish), ``resume`` or ``cancel`` (offers
        withdrawn)."""
        current = (await self.get(org_id, shipment_id)).state
        allowed = {"pause": ("live",), "resume": ("paused",), "cancel": ("live", "paused")}[action]
        if current not in allowed:
            raise ConflictError(
                f"a {current} shipment cannot be {action}d"
                if action != "cancel"
                else f"a {current} shipment cannot be cancelled"
            )
        if action == "cancel":
            await self.delivery.end(shipment_id, "cancelled", "cancelled by a user")
        else:
            async with self.pool.connection() as conn:
                await conn.execute(
                    "UPDATE ota_shipment SET state = %s WHERE id = %s AND state = %s",
                    ("paused" if action == "pause" else "live", shipment_id, current),
                )
        return await self.get(org_id, shipment_id)

    async def delete(self, org_id: int, shipment_id: int) -> None:
        """Delete a cancelled or finished shipment (with its device statuses)."""
        state = (await self.get(org_id, shipment_id)).state
        if state in ("live", "paused"):
            raise ConflictError("cancel the shipment before deleting it")
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM ota_shipment WHERE id = %s", (shipment_id,))


_SUBTREE = (
    "WITH RECURSIVE sub(id) AS (SELECT %s::bigint UNION ALL "
    "SELECT o.id FROM organization o JOIN sub ON o.parent_id = sub.id) SELECT id FROM sub"
)
_IN_SUBTREE = "SELECT 1 FROM (" + _SUBTREE + ") s WHERE s.id = %s"


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _shipment(row: dict[str, Any], counts: dict[str, int], waiting: int) -> Shipment:
    target: dict[str, Any] = {"kind": row["target_kind"]}
    if row["target_template"] is not None:
        target["template_id"] = row["target_template"]
    if row["target_org"] is not None:
        target["org_id"] = row["target_org"]
    if row["target_tag"] is not None:
        target["tag"] = row["target_tag"]
    return Shipment(
        id=row["id"],
        name=row["name"],
        firmware_id=row["firmware_id"],
        target=target,
        apply_mode=row["apply_mode"],
        preferred_time=row["preferred_time"],
        attempts_limit=row["attempts_limit"],
        attempts_period_hours=row["attempts_period"] / 3600,
        pacing=row["pacing"],
        abort=row["abort_rule"],
        device_timeout_seconds=row["device_timeout"],
        state=row["state"],
        state_reason=row["state_reason"],
        created_at=_iso(row["created_at"]),
        ended_at=_iso(row["ended_at"]) or None,
        counts={s.value: counts.get(s.value, 0) for s in DeviceStatus},
        waiting=waiting,
    )
