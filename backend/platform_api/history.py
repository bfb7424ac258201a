"""History of a datastream through the platform API (and issue #4's query API over HTTP).

Every read goes through :mod:`backend.history.queries`: ``series`` (at most N buckets with min,
max and average, read from raw points or the minute or hour rollups), ``raw_page`` (raw points
in time order, never dropping points that share a timestamp) and ``stream_raw`` (a server-side
cursor: an export's memory does not grow with its range).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backend.csvcells import safe_row
from backend.errors import ValidationError
from backend.history.queries import PageCursor, RawPoint, count_raw, raw_page, series, stream_raw
from backend.platform_api.devices import PlatformDevices, ms
from backend.platform_api.schemas import HistoryPoint, RawPageOut, SeriesBucket, SeriesOut
from backend.templates.values import DatastreamSpec, DatastreamType, json_of

NUMERIC = (DatastreamType.INTEGER, DatastreamType.DOUBLE, DatastreamType.ENUM)
EXPORT_FORMATS = ("csv", "json")


def at_ms(value: int | None, default: datetime) -> datetime:
    """Blynk's epoch milliseconds as a time (``default`` when absent)."""
    if value is None:
        return default
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValidationError(f"{value} is not a valid unix epoch time in milliseconds") from None


def point_value(spec: DatastreamSpec, point: RawPoint) -> Any:
    """A raw point's value in its datastream's JSON form."""
    if point.text is not None:
        return json_of(spec, point.text)
    if point.value is not None and spec.type in (DatastreamType.INTEGER, DatastreamType.ENUM):
        return int(point.value)
    return point.value


def encode_cursor(cursor: PageCursor | None) -> str | None:
    if cursor is None:
        return None
    return base64.urlsafe_b64encode(f"{cursor.ts.isoformat()}|{cursor.skip}".encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> PageCursor | None:
    if not text:
        return None
    try:
        ts, _, skip = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().partition("|")
        return PageCursor(datetime.fromisoformat(ts), int(skip))
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("cursor is not one this server gave (use the 'next' of the previous page)") from None


class PlatformHistory:
    """History reads of devices the caller may see."""

    def __init__(self, devices: PlatformDevices, pool: AsyncConnectionPool) -> None:
        self.devices = devices
        self.pool = pool

    async def _spec(self, device_id: int, pin: str) -> DatastreamSpec:
        return self.devices.spec(await self.devices.visible(device_id), pin)

    async def blynk_page(
        self, device_id: int, pin: str, start: int | None, end: int | None, page: int, size: int
    ) -> tuple[list[HistoryPoint], int]:
        """Blynk's history page: raw points of a datastream with "Save Raw Data", oldest first."""
        spec = await self._spec(device_id, pin)
        if not spec.save_raw:
            raise ValidationError(
                f'Datastream {spec.name!r} does not save raw data; turn on "Save Raw Data" '
                "(save_raw) to read its points here, or ask for buckets at .../datastream/series"
            )
        lo, hi = at_ms(start, datetime.fromtimestamp(0, UTC)), at_ms(end, datetime.now(UTC))
        if hi <= lo:
            raise ValidationError("to must be after from")
        points, _next = await raw_page(self.pool, device_id, spec.pin, lo, hi, size, PageCursor(lo, page * size))
        total = await count_raw(self.pool, device_id, spec.pin, lo, hi)
        return [HistoryPoint(ms(p.ts), point_value(spec, p)) for p in points], total

    async def series(self, device_id: int, pin: str, start: int, end: int | None, points: int) -> SeriesOut:
        """At most ``points`` buckets over [from, to] (a point at ``to`` included), each with min, max and average."""
        spec = await self._spec(device_id, pin)
        if spec.type not in NUMERIC:
            raise ValidationError(f"datastream {spec.name!r} holds {spec.type.value} values, which have no buckets")
        result = await series(
            self.pool,
            device_id,
            spec.pin,
            at_ms(start, datetime.now(UTC)),
            at_ms(end, datetime.now(UTC)),
            points,
            save_raw=spec.save_raw,
        )
        return SeriesOut(
            result.source,
            int(result.width.total_seconds() * 1000),
            [SeriesBucket(ms(b.ts), b.min, b.max, b.avg, b.count) for b in result.buckets],
        )

    async def raw(
        self, device_id: int, pin: str, start: int, end: int | None, limit: int, cursor: str | None
    ) -> RawPageOut:
        """A page of raw points in time order and the cursor of the next page."""
        spec = await self._spec(device_id, pin)
        points, following = await raw_page(
            self.pool,
            device_id,
            spec.pin,
            at_ms(start, datetime.now(UTC)),
            at_ms(end, datetime.now(UTC)),
            limit,
            decode_cursor(cursor),
        )
        return RawPageOut([HistoryPoint(ms(p.ts), point_value(spec, p)) for p in points], encode_cursor(following))

    async def export(self, device_id: int, pin: str, start: int, end: int | None, fmt: str) -> AsyncIterator[bytes]:
        """Every raw point of the range as CSV or JSON, produced as it is read."""
        spec = await self._spec(device_id, pin)
        if fmt not in EXPORT_FORMATS:
            raise ValidationError("format is csv or json")
        lo, hi = at_ms(start, datetime.now(UTC)), at_ms(end, datetime.now(UTC))
        if hi <= lo:
            raise ValidationError("to must be after from")
        return _export(stream_raw(self.pool, device_id, spec.pin, lo, hi), spec, fmt)


class CsvLines:
    """CSV lines one at a time: quoted by the ``csv`` module, and no cell a spreadsheet would run
    as a formula (:mod:`backend.csvcells`)."""

    def __init__(self) -> None:
        self._out = io.StringIO()
        self._writer = csv.writer(self._out)

    def line(self, cells: list[str]) -> bytes:
        """One row as CSV bytes (with its line break)."""
        self._writer.writerow(safe_row(cells))
        text = self._out.getvalue()
        self._out.seek(0)
        self._out.truncate()
        return text.encode()


def export_points(points: AsyncIterator[RawPoint], spec: DatastreamSpec, fmt: str) -> AsyncIterator[bytes]:
    """Raw points as the export's CSV (``ts,time,value``) or JSON, produced as they are read
    (the console's export button streams the same bytes as ``/datastream/export``)."""
    return _export(points, spec, fmt)


async def _export(points: AsyncIterator[RawPoint], spec: DatastreamSpec, fmt: str) -> AsyncIterator[bytes]:
    if fmt == "csv":
        lines = CsvLines()
        yield lines.line(["ts", "time", "value"])
        async for p in points:
            value = point_value(spec, p)
            text = value if isinstance(value, str) else json.dumps(value)
            yield lines.line([str(ms(p.ts)), p.ts.isoformat(), text])
        return
    yield b"["
    first = True
    async for p in points:
        yield (b"" if first else b",") + json.dumps({"createdAt": ms(p.ts), "value": point_value(spec, p)}).encode()
        first = False
    yield b"]"
