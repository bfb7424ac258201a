"""``POST /external/api/batch/update``: import a set of timestamped points into one datastream.

Body ``[[ts_ms, value], ...]`` (``Content-Type: application/json``), at most 10,000 points a
request and ``import_daily_points`` a device a day; timestamps within
``timestamped_max_age_days`` of now (the same rule as MQTT's timestamped points). Either the
whole request is stored (history at the points' own timestamps, in one transaction with the
daily counter) or nothing is: raw rows only for a datastream with ``save_raw``, per-minute and
per-hour rollups of numbers always. The latest value moves only if the newest point is newer
than it. The points are history: they are not sent to the device.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool

from backend import errors as e
from backend.device_api.common import DailyQuota, Query, named_datastream
from backend.device_api.services import DeviceApiService
from backend.devices.data import history_row
from backend.devices.latest import LatestValues
from backend.errors import BlynkApiError, BlynkLimitError, ValidationError
from backend.history.writer import NewestValues, Row, write_rows
from backend.templates.values import MULTI_SEPARATOR, DatastreamSpec, DatastreamType, Value, parse_value

MAX_BATCH_POINTS = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024
IMPORT_LIMIT = "Data import limit has been reached."
OUT_OF_RANGE = "Timestamp is out of range. Timestamps should be within one month of the current time."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_NUMERIC = (DatastreamType.INTEGER, DatastreamType.DOUBLE, DatastreamType.ENUM)


@dataclass(frozen=True, slots=True)
class Point:
    """One checked point."""

    ts: datetime
    value: Value


class BatchImportService:
    """Checks and stores timestamped points sent over HTTP."""

    def __init__(
        self,
        api: DeviceApiService,
        pool: AsyncConnectionPool,
        latest: LatestValues,
        quota: DailyQuota,
        max_string_bytes: int = 1024,
        max_age: timedelta = timedelta(days=30),
    ) -> None:
        self.api = api
        self.pool = pool
        self.latest = latest
        self.quota = quota
        self.max_string_bytes = max_string_bytes
        self.max_age = max_age  # Blynk: "timestamps could be only one month in the past"

    async def import_points(self, query: Query, content_type: str | None, body: AsyncIterator[bytes]) -> None:
        """Check every point, then store all of them or none (the body is read after the query
        is checked, and never beyond ``MAX_BODY_BYTES``)."""
        device = await self.api.reporting_device(query)  # counts for HTTP-only online
        if not _is_json(content_type):
            raise BlynkApiError(e.UNKNOWN_CONTENT_TYPE)
        spec = named_datastream(device, query)
        if spec is None:
            raise BlynkApiError(e.WRONG_PIN)
        await self.save(device.id, spec, self.check(spec, await _read(body), datetime.now(UTC)))

    async def import_items(self, device_id: int, spec: DatastreamSpec, items: Any) -> None:
        """Decoded points (``[[ts_ms, value], ...]``) of a device the caller has already found
        and may write to, checked and stored as ``import_points`` does (the platform API's
        ``/device/import/batch``; the device does not count as reporting)."""
        await self.save(device_id, spec, self.check_items(spec, items, datetime.now(UTC)))

    async def save(self, device_id: int, spec: DatastreamSpec, points: list[Point]) -> None:
        """Store checked points (all or none) and move the latest value if the newest is newer."""
        if points:
            newest = max(points, key=lambda p: p.ts)
            latest = {(device_id, spec.pin): (newest.value.text, newest.ts)}
            await self._store(device_id, spec, points, latest)
            self.latest.remember_many(latest)

    def check(self, spec: DatastreamSpec, body: bytes, now: datetime) -> list[Point]:
        """Parse the body and check every point against the datastream."""
        try:
            items = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise BlynkApiError(e.BAD_PARAMS) from None
        return self.check_items(spec, items, now)

    def check_items(self, spec: DatastreamSpec, items: Any, now: datetime) -> list[Point]:
        """Check every decoded point against the datastream (at most ``MAX_BATCH_POINTS``)."""
        if not isinstance(items, list):
            raise BlynkApiError(e.BAD_PARAMS)
        if len(items) > MAX_BATCH_POINTS:
            raise BlynkApiError(e.TOO_MUCH_DATA)
        return [self._point(spec, item, now) for item in items]

    def _point(self, spec: DatastreamSpec, item: Any, now: datetime) -> Point:
        if not isinstance(item, list) or len(item) != 2:
            raise BlynkApiError(e.BAD_PARAMS)
        ts_ms, raw = item
        if isinstance(ts_ms, float) and ts_ms.is_integer():
            ts_ms = int(ts_ms)
        if not isinstance(ts_ms, int) or isinstance(ts_ms, bool):
            raise BlynkApiError(e.BAD_PARAMS)
        if abs(ts_ms - (now - _EPOCH) // _MS) > self.max_age // _MS:  # checked before it becomes a datetime
            raise BlynkApiError(OUT_OF_RANGE)
        ts = _EPOCH + ts_ms * _MS
        try:
            value = parse_value(spec, wire_value(spec, raw), max_string_bytes=self.max_string_bytes)
        except ValidationError:
            raise BlynkApiError(e.WRONG_TYPE) from None
        return Point(ts, value)

    async def _store(self, device_id: int, spec: DatastreamSpec, points: list[Point], latest: NewestValues) -> None:
        """The points, the rollups, the latest value and the daily counter in one transaction.

        Each point's row is the one the live path makes (:func:`backend.devices.data.history_row`,
        Blynk's "Save Raw Data" rule) at the point's own timestamp, written by the history
        writer's :func:`~backend.history.writer.write_rows`. Points that are not history
        (strings and locations without ``save_raw``) still count against the daily import limit.
        """
        rows: list[Row] = []
        for p in points:
            row = history_row(device_id, spec, p.ts, p.value.text, p.value.number)
            if row is not None:
                rows.append(row)
        async with self.pool.connection() as conn:
            async with conn.transaction():
                if await self.quota.take(device_id, len(points), conn=conn) is None:
                    raise BlynkLimitError(IMPORT_LIMIT)
                await write_rows(conn, rows, latest)


def wire_value(spec: DatastreamSpec, raw: Any) -> str:
    """A JSON value as the text a device would send, if its JSON type fits the datastream.

    Strings for string datastreams; numbers (and ``true``/``false`` as 1/0) for integer,
    double and enum ones; ``[lon, lat]`` for locations. Anything else is the wrong type.
    """
    if spec.type is DatastreamType.STRING:
        if isinstance(raw, str):
            return raw
    elif spec.type in _NUMERIC:
        if isinstance(raw, bool):
            return "1" if raw else "0"
        if isinstance(raw, (int, float)) and math.isfinite(raw):
            return repr(raw)
    elif spec.type is DatastreamType.LOCATION:
        if (
            isinstance(raw, list)
            and len(raw) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw)
        ):
            return f"{raw[0]!r}{MULTI_SEPARATOR}{raw[1]!r}"
    raise BlynkApiError(e.WRONG_TYPE)


async def _read(body: AsyncIterator[bytes]) -> bytes:
    """The whole body, or Blynk's too-much-data error once it passes ``MAX_BODY_BYTES``."""
    data = bytearray()
    async for chunk in body:
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise BlynkApiError(e.TOO_MUCH_DATA)
    return bytes(data)


def _is_json(content_type: str | None) -> bool:
    """True for ``application/json`` (parameters such as ``charset`` allowed)."""
    return content_type is not None and content_type.split(";")[0].strip().lower() == "application/json"
