"""``GET /external/api/data/get``: a device's history as a CSV inside a zip, served for a while.

The query's rows come from a server-side cursor in chunks and are written to the zip member as
they arrive (formatting and compression in a worker thread), so memory does not grow with the
range. The zip is written as ``<name>.part`` and renamed when complete; it is recorded in
``device_file`` (kind ``export``) and served at ``/<name>`` until ``export_ttl_hours`` have
passed. Expired exports (row and file) are deleted whenever a device asks for a new one or
someone asks for an expired one.

CSV members: ``<name>.csv`` with ``data_stream_name,ts,value`` (rows ordered by datastream,
then time) and, with ``sendEvents=true``, ``events.csv`` with ``ts,kind,code,type,description``.
Every cell goes through :func:`backend.csvcells.safe_cell`: a value or description a spreadsheet
would run as a formula gets a leading single quote (plain numbers stay numbers).
Which table each datastream's rows come from (raw points only for ``RAW_DATA`` of a datastream
with ``save_raw``, the rollups otherwise) is decided in ``export_params``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
import secrets
import string
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from backend import errors as e
from backend.csvcells import safe_row
from backend.device_api.common import DailyQuota, Query, named_datastream
from backend.device_api.export_params import (
    DATA_HEADER,
    EVENT_HEADER,
    DataQuery,
    ExportParams,
    data_formatter,
    data_queries,
    event_formatter,
    parse_params,
)
from backend.device_api.services import DeviceApiService
from backend.devices.registry import DeviceInfo
from backend.errors import BlynkLimitError, BlynkServerError

log = logging.getLogger(__name__)

EXPORT_LIMIT = "Data export limit has been reached."
CHUNK_ROWS = 5000
_ALPHANUMERIC = string.ascii_letters + string.digits
EXPORT_NAME = re.compile(r"^device_data_\d+_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_[A-Za-z0-9]{16}\.zip$")

_EVENTS_SQL = """
SELECT ts, kind, code, type, description FROM device_event
WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s ORDER BY ts
"""
_RESERVE_SQL = (
    "INSERT INTO device_file (device_id, name, stored_name, size, content_type, kind) "
    "VALUES (%s, %s, %s, 0, 'application/zip', 'export')"
)


class ZipCsv:
    """A zip written one CSV member at a time, a chunk of rows at a time (blocking: run it in a
    worker thread); no cell can run as a spreadsheet formula."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
        self._text: io.TextIOWrapper | None = None
        self._csv: Any = None

    def begin(self, member: str, header: Sequence[str]) -> None:
        """Start the next CSV member with its header row."""
        self._end_member()
        self._text = io.TextIOWrapper(self._zip.open(member, "w", force_zip64=True), encoding="utf-8", newline="")
        self._csv = csv.writer(self._text)
        self._csv.writerow(safe_row(header))

    def write(self, rows: Sequence[Sequence[Any]], fmt: Callable[[Sequence[Any]], list[str]]) -> None:
        """Format and append rows to the current member."""
        self._csv.writerows(safe_row(fmt(row)) for row in rows)

    def close(self) -> None:
        """Finish the current member and the zip."""
        self._end_member()
        self._zip.close()

    def _end_member(self) -> None:
        if self._text is not None:
            self._text.close()
            self._text = None


class ExportService:
    """Creates, serves and expires data export zips."""

    def __init__(
        self, api: DeviceApiService, pool: AsyncConnectionPool, directory: Path, quota: DailyQuota, ttl: timedelta
    ) -> None:
        self.api = api
        self.pool = pool
        self.dir = directory
        self.quota = quota
        self.ttl = ttl

    async def create(self, query: Query, base: str) -> dict[str, str]:
        """Write the export the query asks for; Blynk's ``{"link": ...}`` answer."""
        device = await self.api.device(query)
        spec = named_datastream(device, query)
        params = parse_params(query, [spec] if spec else sorted(device.by_pin.values(), key=lambda s: s.pin))
        day = await self.quota.take(device.id)
        if day is None:
            raise BlynkLimitError(EXPORT_LIMIT)
        try:
            name = await self._export(device, params)
        except Exception:
            await self.quota.refund(device.id, day)
            raise
        await self.cleanup()
        return {"link": f"{base}/{name}"}

    async def find(self, name: str) -> Path | None:
        """The file of a live export called ``name``, or None (an expired one is deleted)."""
        if not EXPORT_NAME.fullmatch(name):
            return None
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT created_at >= now() - %s FROM device_file WHERE stored_name = %s AND kind = 'export'",
                    (self.ttl, name),
                )
            ).fetchone()
        if row is None:
            return None
        if not row[0]:
            await self.cleanup()
            return None
        path = self.dir / name
        return path if path.is_file() else None

    async def cleanup(self) -> int:
        """Delete expired exports (rows and files) and stale partial files; how many went."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "DELETE FROM device_file WHERE kind = 'export' AND created_at < now() - %s RETURNING stored_name",
                    (self.ttl,),
                )
            ).fetchall()
        return len(rows) + await asyncio.to_thread(self._remove_files, [r[0] for r in rows])

    def _remove_files(self, names: list[str]) -> int:
        for name in names:
            (self.dir / name).unlink(missing_ok=True)
        cutoff, stale = time.time() - self.ttl.total_seconds(), 0
        for path in self.dir.glob("*.part"):
            if path.stat().st_mtime < cutoff:  # left by a crash: an export never takes that long
                path.unlink(missing_ok=True)
                stale += 1
        return stale

    async def _export(self, device: DeviceInfo, params: ExportParams) -> str:
        now = datetime.now(UTC)
        name = await self._reserve(device.id, now)
        part = self.dir / f"{name}.part"
        try:
            if await self._write_zip(part, name, device, params, now) == 0:
                raise BlynkServerError(e.NO_DATA)
            size = part.stat().st_size
            part.replace(self.dir / name)
            async with self.pool.connection() as conn:
                await conn.execute("UPDATE device_file SET size = %s WHERE stored_name = %s", (size, name))
        except BaseException:
            part.unlink(missing_ok=True)
            async with self.pool.connection() as conn:
                await conn.execute("DELETE FROM device_file WHERE stored_name = %s", (name,))
            raise
        return name

    async def _reserve(self, device_id: int, now: datetime) -> str:
        """Claim ``device_data_<id>_<UTC time>_<16 random characters>.zip``.

        Blynk's links end at the time; the links are served without a token for a day, so a
        random part keeps them from being guessed (clients use the link as given).
        """
        async with self.pool.connection() as conn:
            for _ in range(5):
                suffix = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(16))
                name = f"device_data_{device_id}_{now:%Y-%m-%dT%H-%M-%S}_{suffix}.zip"
                try:
                    await conn.execute(_RESERVE_SQL, (device_id, name, name))
                    return name
                except psycopg.errors.UniqueViolation:
                    continue
        raise BlynkLimitError(EXPORT_LIMIT)

    async def _write_zip(self, part: Path, name: str, device: DeviceInfo, params: ExportParams, now: datetime) -> int:
        """Write the zip; how many rows it holds."""
        self.dir.mkdir(parents=True, exist_ok=True)
        start = now - params.period
        events = {"device": device.id, "start": start, "end": now}
        writer = await asyncio.to_thread(ZipCsv, part)
        try:
            await asyncio.to_thread(writer.begin, name.removesuffix(".zip") + ".csv", DATA_HEADER)
            rows = await self._copy(writer, data_queries(params, device.id, start, now), data_formatter(params))
            if params.send_events:
                await asyncio.to_thread(writer.begin, "events.csv", EVENT_HEADER)
                rows += await self._copy(writer, [(_EVENTS_SQL, events)], event_formatter(params))
        finally:
            await asyncio.to_thread(writer.close)
        return rows

    async def _copy(
        self, writer: ZipCsv, queries: Sequence[DataQuery], fmt: Callable[[Sequence[Any]], list[str]]
    ) -> int:
        """Stream the queries' rows, one query after the other, into the current member through
        server-side cursors (at most ``CHUNK_ROWS`` rows in memory)."""
        count = 0
        async with self.pool.connection() as conn:
            async with conn.transaction():  # one snapshot for every datastream
                for sql, args in queries:
                    async with conn.cursor(name=f"export_{uuid.uuid4().hex}") as cur:
                        await cur.execute(sql, args)
                        while rows := await cur.fetchmany(CHUNK_ROWS):
                            await asyncio.to_thread(writer.write, rows, fmt)
                            count += len(rows)
        return count
