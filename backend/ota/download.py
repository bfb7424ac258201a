"""``GET /api/ota/download?token=...``: the image for one device, with ``Range`` (resume).

Headers as Blynk sends them: ``x-sha256`` (base64), ``x-md5`` (hex), ``x-fw-type``,
``x-fw-ver``, ``x-fw-build``. A request from byte 0 is a new download and counts against the
shipment's attempts limit ("Download limit reached"); a resumed range does not. The first
request moves the device to "New Firmware Requested", serving the last byte of the image to
"Firmware Downloaded".
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.errors import PermissionDeniedError, ValidationError
from backend.ota.delivery import Delivery, limit_of, now_utc, unix_now
from backend.ota.storage import FirmwareFiles
from ota import DeviceStatus, DownloadTokens, SignatureError
from ota.states import DownloadCompleted, DownloadStarted, LimitReached

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiableError(ValidationError):
    """A ``Range`` outside the image (answered 416 with ``Content-Range: bytes */size``)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable; the image has {size} bytes")
        self.size = size


@dataclass
class Download:
    """One response to send: bytes ``start..end`` (inclusive) of ``path``."""

    path: Path
    start: int
    end: int
    size: int
    partial: bool
    headers: dict[str, str]
    shipment: dict[str, Any] = field(repr=False)
    device_id: int = 0


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` of a single ``bytes=`` range; None for no (or an unusable multi-)range;
    raises RangeNotSatisfiableError."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # RFC 9110: a server may ignore a Range it does not understand
    first, last = match[1], match[2]
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiableError(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiableError(size)
    return start, end


class DownloadService:
    """Checks the token and the device's status, then says what to send."""

    def __init__(self, delivery: Delivery, files: FirmwareFiles, tokens: DownloadTokens) -> None:
        self.delivery = delivery
        self.files = files
        self.tokens = tokens
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self, token: str, range_header: str | None) -> Download:
        """The download for this token; raises PermissionDeniedError or RangeNotSatisfiableError."""
        try:
            grant = self.tokens.check(token, unix_now())
        except SignatureError as exc:
            raise PermissionDeniedError(exc.message) from None
        shipment = await self.delivery.shipment(grant.shipment_id)
        if shipment is None or shipment["state"] not in ("live", "paused"):
            raise PermissionDeniedError("this firmware offer has been withdrawn")
        status = await self._status(grant.shipment_id, grant.device_id)
        if status is None or not status.active:
            raise PermissionDeniedError("this firmware offer is no longer valid for this device")
        size = shipment["size"]
        span = parse_range(range_header, size)
        if span is None or span[0] == 0:
            await self._count_download(shipment, grant.device_id)
        await self.delivery.transition(shipment, grant.device_id, DownloadStarted())
        start, end = span or (0, size - 1)
        headers = {
            "x-sha256": base64.b64encode(bytes(shipment["sha256"])).decode(),
            "x-md5": bytes(shipment["md5"]).hex(),
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start + 1),
        }
        for name, column in (("x-fw-type", "fw_type"), ("x-fw-ver", "version"), ("x-fw-build", "build")):
            if shipment[column]:
                headers[name] = shipment[column]
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        path = self.files.path(bytes(shipment["sha256"]).hex())
        return Download(path, start, end, size, span is not None, headers, shipment, grant.device_id)

    async def _status(self, shipment_id: int, device_id: int) -> DeviceStatus | None:
        async with self.delivery.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT status FROM ota_device WHERE shipment_id = %s AND device_id = %s", (shipment_id, device_id)
                )
            ).fetchone()
        return DeviceStatus(row[0]) if row else None

    async def _count_download(self, shipment: dict[str, Any], device_id: int) -> None:
        now, limit = now_utc(), limit_of(shipment)
        async with self.delivery.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT downloads FROM ota_device WHERE shipment_id = %s AND device_id = %s FOR UPDATE",
                    (shipment["id"], device_id),
                )
            ).fetchone()
            recent = limit.recent(list(row[0]) if row else [], now)
            allowed = limit.allows(recent, now)
            if allowed:
                await conn.execute(
                    "UPDATE ota_device SET downloads = %s WHERE shipment_id = %s AND device_id = %s",
                    ([*recent, now], shipment["id"], device_id),
                )
            else:
                await self.delivery.transition(
                    shipment, device_id, LimitReached(), f"{limit.count} downloads already made", conn
                )
        if not allowed:  # after the commit: the status change must stay
            raise PermissionDeniedError("Download limit reached")

    def sent(self, download: Download, count: int, complete: bool) -> None:
        """Record what a response sent (called as it ends, also when the device hung up)."""
        task = asyncio.get_running_loop().create_task(self._record(download, count, complete))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, download: Download, count: int, complete: bool) -> None:
        async with self.delivery.pool.connection() as conn:
            await conn.execute(
                "UPDATE ota_device SET bytes_served = bytes_served + %s WHERE shipment_id = %s AND device_id = %s",
                (count, download.shipment["id"], download.device_id),
            )
        if complete and download.end == download.size - 1:
            await self.delivery.transition(download.shipment, download.device_id, DownloadCompleted())
