"""What the device API's data endpoints share: query access, the datastream a request names,
and the per-device daily limits (imports, exports, uploads) kept in ``device_quota``."""

from __future__ import annotations

import re
from datetime import date

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backend import errors as e
from backend.devices.registry import DeviceInfo
from backend.errors import BlynkApiError
from backend.numbers import is_digits
from backend.templates.values import DatastreamSpec

Query = list[tuple[str, str]]
_PIN_KEY = re.compile(r"^[vV](\d{1,3})$")

_TAKE_SQL = """
INSERT INTO device_quota AS q (device_id, kind, day, used) VALUES (%s, %s, (now() AT TIME ZONE 'UTC')::date, %s)
ON CONFLICT (device_id, kind, day) DO UPDATE SET used = q.used + EXCLUDED.used
WHERE q.used + EXCLUDED.used <= %s
RETURNING day
"""
_FORGET_SQL = "DELETE FROM device_quota WHERE device_id = %s AND kind = %s AND day < %s"
_REFUND_SQL = "UPDATE device_quota SET used = greatest(used - %s, 0) WHERE device_id = %s AND kind = %s AND day = %s"


def first(query: Query, key: str) -> str | None:
    """The first value of ``key`` in the query, or None."""
    return next((v for k, v in query if k == key), None)


def named_datastream(device: DeviceInfo, query: Query) -> DatastreamSpec | None:
    """The datastream a request names with ``pin=v1`` or ``dataStreamId=1`` (None if neither).

    Same rules and texts as the GET endpoints: ``dataStreamId`` is the virtual pin number.
    """
    ds_id = first(query, "dataStreamId")
    if ds_id is not None:
        if not is_digits(ds_id):
            raise BlynkApiError(e.WRONG_DATASTREAM_ID)
        spec = device.by_pin.get(int(ds_id))
        if spec is None:
            raise BlynkApiError(f"Requested dataStream doesn't exist in the product {device.template_name}")
        return spec
    pin = first(query, "pin")
    if pin is None:
        return None
    return spec_for_pin_key(device, pin)


def spec_for_pin_key(device: DeviceInfo, key: str) -> DatastreamSpec:
    """The datastream of a pin written ``v1``/``V1``; Blynk's errors otherwise."""
    match = _PIN_KEY.match(key)
    if not match or int(match[1]) > 255:
        raise BlynkApiError(e.WRONG_PIN)
    spec = device.by_pin.get(int(match[1]))
    if spec is None:
        raise BlynkApiError(e.NO_DATASTREAM)
    return spec


class DailyQuota:
    """Per-device, per-UTC-day counters with a limit, taken atomically in PostgreSQL.

    ``take`` adds ``amount`` only if the total stays within the limit, so concurrent requests
    (even in several app processes) never overshoot it.
    """

    def __init__(self, pool: AsyncConnectionPool, kind: str, limit: int) -> None:
        self.pool = pool
        self.kind = kind
        self.limit = limit

    async def take(self, device_id: int, amount: int = 1, conn: AsyncConnection | None = None) -> date | None:
        """Use ``amount`` of today's limit; the day it counted on, or None if it would exceed it.

        With ``conn`` it runs on that connection (inside the caller's transaction, so a rollback
        gives the amount back).
        """
        if amount > self.limit:
            return None
        if conn is not None:
            return await self._take(conn, device_id, amount)
        async with self.pool.connection() as own:
            return await self._take(own, device_id, amount)

    async def refund(self, device_id: int, day: date, amount: int = 1) -> None:
        """Give back what a request took but did not use (it failed afterwards)."""
        async with self.pool.connection() as conn:
            await conn.execute(_REFUND_SQL, (amount, device_id, self.kind, day))

    async def _take(self, conn: AsyncConnection, device_id: int, amount: int) -> date | None:
        row = await (await conn.execute(_TAKE_SQL, (device_id, self.kind, amount, self.limit))).fetchone()
        if row is None:
            return None
        await conn.execute(_FORGET_SQL, (device_id, self.kind, row[0]))
        return row[0]  # type: ignore[no-any-return]


def base_url(scheme: str, host: str) -> str:
    """``scheme://host`` for links in answers, from the request's own Host header."""
    return f"{scheme}://{host}"
