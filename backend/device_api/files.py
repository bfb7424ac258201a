"""``POST /external/api/upload``: files devices upload, kept per device and served back.

The multipart body is parsed as it arrives (``multipart.PushMultipartParser``) and the
``upfile`` part is written straight to a temporary file; a body or a file larger than
``upload_max_bytes`` is refused as soon as that is known, without reading the rest. Files live
under ``<data_dir>/uploads/<device_id>/<random 32 characters><.ext>`` (the random name is
also what makes the URL unguessable: the files are served without a token). A device keeps
``upload_files_per_device`` files (uploads and core dumps together); the oldest go first.
As Blynk documents, uploading a file of the same name again replaces it (same URL); core dumps
(``?type=DUMP``) are always kept as new files.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import secrets
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser, parse_options_header
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backend import errors as e
from backend.device_api.common import DailyQuota, Query, first
from backend.device_api.services import DeviceApiService
from backend.errors import BlynkApiError, BlynkLimitError, StorageFullError, disk_full

log = logging.getLogger(__name__)

FIELD = "upfile"
FORM_OVERHEAD = 64 * 1024  # room for boundaries, part headers and small fields around the file
STORED_NAME = re.compile(r"^[A-Za-z0-9]{32}(\.[a-z0-9]{1,10})?$")
_ALPHABET = string.ascii_letters + string.digits
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Received:
    """An uploaded file sitting in its temporary place."""

    path: Path
    name: str
    size: int
    content_type: str


@dataclass(frozen=True)
class StoredFile:
    """A file to serve: where it is and its content type."""

    path: Path
    content_type: str
    name: str


def safe_name(filename: str | None) -> str:
    """A file name that is safe to keep and show: no directories, only ``[A-Za-z0-9._-]``."""
    base = re.split(r"[/\\]", filename or "")[-1]
    base = _UNSAFE.sub("_", base).strip("._")[:100]
    return base or "file"


def too_large(limit: int) -> BlynkApiError:
    """The error for a file above the limit, with the limit in the text."""
    size = f"{limit // (1024 * 1024)} MB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"
    return BlynkApiError(f"File is too large. Maximum file size is {size}.")


class UploadService:
    """Receives, stores, evicts and finds device uploads."""

    def __init__(
        self,
        api: DeviceApiService,
        pool: AsyncConnectionPool,
        directory: Path,
        quota: DailyQuota,
        max_bytes: int,
        keep: int,
    ) -> None:
        self.api = api
        self.pool = pool
        self.dir = directory
        self.quota = quota
        self.max_bytes = max_bytes
        self.keep = keep

    async def upload(
        self, query: Query, content_type: str | None, content_length: int | None, body: AsyncIterator[bytes], base: str
    ) -> str:
        """Store the ``upfile`` part of a multipart body; the URL it is served at."""
        device = await self.api.reporting_device(query)  # counts for HTTP-only online
        kind = "dump" if (first(query, "type") or "").upper() == "DUMP" else "file"
        boundary = _boundary(content_type)
        if content_length is not None and content_length > self.max_bytes + FORM_OVERHEAD:
            raise too_large(self.max_bytes)
        day = await self.quota.take(device.id)
        if day is None:
            raise BlynkLimitError(e.UPLOAD_LIMIT)
        try:
            received = await self._receive(device.id, boundary, body)
            try:
                stored = await self._store(device.id, kind, received)
            finally:
                received.path.unlink(missing_ok=True)
        except Exception:
            await self.quota.refund(device.id, day)
            raise
        return f"{base}/device_uploads/{device.id}/{stored}"

    async def find(self, device_id: int, stored_name: str) -> StoredFile | None:
        """An uploaded file by its URL parts, or None."""
        if not STORED_NAME.fullmatch(stored_name):
            return None
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT content_type, name FROM device_file WHERE device_id = %s AND stored_name = %s "
                    "AND kind IN ('file', 'dump')",
                    (device_id, stored_name),
                )
            ).fetchone()
        path = self.dir / str(device_id) / stored_name
        if row is None or not path.is_file():
            return None
        return StoredFile(path, row[0], row[1])

    async def _receive(self, device_id: int, boundary: str, body: AsyncIterator[bytes]) -> Received:
        """Parse the body as it comes, writing the ``upfile`` part to a temporary file."""
        folder = self.dir / str(device_id)
        tmp = folder / f".upload-{secrets.token_hex(8)}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return await self._parse(tmp, boundary, body)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if disk_full(exc):
                log.warning("disk full: device %s's upload to %s was refused (%s)", device_id, folder, exc)
                raise StorageFullError("the uploaded file") from None
            raise

    async def _parse(self, tmp: Path, boundary: str, body: AsyncIterator[bytes]) -> Received:
        found: Received | None = None
        segment: MultipartSegment | None = None
        total = 0
        try:
            with open(tmp, "wb") as out, PushMultipartParser(boundary, max_segment_count=16) as parser:
                async for chunk in body:
                    total += len(chunk)
                    if total > self.max_bytes + FORM_OVERHEAD:
                        raise too_large(self.max_bytes)
                    for event in parser.parse(chunk):
                        if isinstance(event, MultipartSegment):
                            segment = event
                        elif event is None:  # end of a part
                            if segment is not None and segment.name == FIELD and found is None:
                                found = _received(tmp, segment, out.tell())
                            segment = None
                        elif segment is not None and segment.name == FIELD and found is None:
                            if out.tell() + len(event) > self.max_bytes:
                                raise too_large(self.max_bytes)
                            out.write(event)
                    if not chunk:
                        break
        except (ParserError, ParserLimitReached):
            raise BlynkApiError(e.BAD_PARAMS) from None
        if found is None:
            raise BlynkApiError(e.BAD_PARAMS)
        return found

    async def _store(self, device_id: int, kind: str, received: Received) -> str:
        """Move the file in place and record it; delete what goes beyond the per-device count."""
        folder = self.dir / str(device_id)
        async with self.pool.connection() as conn:
            async with conn.transaction():
                await conn.execute("SELECT id FROM device WHERE id = %s FOR UPDATE", (device_id,))
                stored = await self._replace_or_insert(conn, device_id, kind, received)
                os.replace(received.path, folder / stored)
                evicted = await (
                    await conn.execute(
                        "DELETE FROM device_file WHERE id IN (SELECT id FROM device_file WHERE device_id = %s "
                        "AND kind IN ('file', 'dump') ORDER BY created_at DESC, id DESC OFFSET %s) RETURNING stored_name",
                        (device_id, self.keep),
                    )
                ).fetchall()
        for (name,) in evicted:
            (folder / name).unlink(missing_ok=True)
        return stored

    async def _replace_or_insert(self, conn: AsyncConnection, device_id: int, kind: str, received: Received) -> str:
        if kind == "file":
            row = await (
                await conn.execute(
                    "UPDATE device_file SET size = %s, content_type = %s, created_at = clock_timestamp() "
                    "WHERE device_id = %s AND kind = 'file' AND name = %s RETURNING stored_name",
                    (received.size, received.content_type, device_id, received.name),
                )
            ).fetchone()
            if row is not None:
                return str(row[0])
        stored = "".join(secrets.choice(_ALPHABET) for _ in range(32)) + _extension(received.name)
        await conn.execute(
            "INSERT INTO device_file (device_id, name, stored_name, size, content_type, kind, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, clock_timestamp())",
            (device_id, received.name, stored, received.size, received.content_type, kind),
        )
        return stored


def _boundary(content_type: str | None) -> str:
    """The multipart boundary, or Blynk's ``Unknown content type.``"""
    parsed: tuple[str, dict[str, str]]
    parsed = parse_options_header(content_type or "")  # type: ignore[no-untyped-call]  # unannotated in multipart
    mime, options = parsed
    if mime != "multipart/form-data" or not options.get("boundary"):
        raise BlynkApiError(e.UNKNOWN_CONTENT_TYPE)
    return str(options["boundary"])


def _received(tmp: Path, segment: MultipartSegment, size: int) -> Received:
    name = safe_name(segment.filename)
    guessed = mimetypes.guess_type(name)[0]
    return Received(tmp, name, size, guessed or segment.content_type or "application/octet-stream")


def _extension(name: str) -> str:
    match = re.search(r"\.([A-Za-z0-9]{1,10})$", name)
    return f".{match[1].lower()}" if match else ""
