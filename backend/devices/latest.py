"""Latest datastream values: held in memory, stored in ``datastream_value``.

Every value goes into the in-memory map at once (so reads see it immediately). Who stores it:

* every value the app stores, :meth:`remember_many`: values recorded through
  :meth:`backend.devices.data.DataService.record` (devices over MQTT, the HTTP device API's
  ``update``, the console, the platform API) are upserted by the history writer, the newest
  value of each datastream of a batch in the transaction that commits the batch's rows
  (``backend.history.writer``); the HTTP device API's import of past points does the same in
  its own transaction (``write_rows``). A device's PUBACK and an HTTP 200 wait for that
  commit, so after a crash, a power loss, or in a backup's snapshot, the latest value is the
  last one acknowledged and agrees with history (README, "What each QoS promises"). It costs
  one multi-row statement a batch (README, "Performance").
* a value stored without a history transaction, :meth:`put_many`: the key is marked dirty and
  a flusher writes the dirty keys at most once per ``flush_seconds``, coalesced. No path of the
  app takes this route today; it is not durable before the flush, so a new caller that
  acknowledges anything should write its latest values as the history writer does.

Until 2026-12-06 every value took the second route, so a latest value could be a second older
than history and than what the device was told was stored. Rebuilding latest values from history
at startup would not do: with "Save Raw Data" off history holds only per-minute averages, and
strings are not history at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

import psycopg
from psycopg_pool import AsyncConnectionPool

from backend.tasks import cancel
from backend.templates.values import db_text, shown_text, wire_text

log = logging.getLogger(__name__)

UPSERT_SQL = """
INSERT INTO datastream_value (device_id, pin, value, updated_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (device_id, pin) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
WHERE datastream_value.updated_at <= EXCLUDED.updated_at
"""


class Latest(NamedTuple):
    """The latest value of one datastream (a named tuple: made once per ingested value)."""

    value: str
    updated_at: datetime


class LatestValues:
    """In-memory latest values with coalesced persistence."""

    def __init__(self, pool: AsyncConnectionPool, flush_seconds: float = 1.0) -> None:
        self.pool = pool
        self.flush_seconds = flush_seconds
        self._values: dict[int, dict[int, tuple[str | float, datetime]]] = {}
        """By device and pin, as plain tuples (a :class:`Latest` costs more to make, once a
        value); a Double's value may wait as its number, formatted when read."""
        self._loaded: set[int] = set()
        self._dirty: set[tuple[int, int]] = set()
        self._task: asyncio.Task[None] | None = None

    async def get_all(self, device_id: int) -> dict[int, Latest]:
        """Every stored value of the device, by pin."""
        if device_id not in self._loaded:
            await self._load(device_id)
        return {pin: Latest(shown_text(value), at) for pin, (value, at) in self._values.get(device_id, {}).items()}

    async def get(self, device_id: int, pin: int) -> Latest | None:
        """The latest value of one pin, or None."""
        return (await self.get_all(device_id)).get(pin)

    def put_many(self, newest: Mapping[tuple[int, int], tuple[str | float, datetime]]) -> None:
        """Record the newest ``(value, at)`` of each ``(device_id, pin)``: visible at once,
        persisted within ``flush_seconds`` (for values no history transaction stores: see the
        module's docstring). As :meth:`remember_many` otherwise."""
        self._put(newest, self._dirty)

    def remember_many(self, newest: Mapping[tuple[int, int], tuple[str | float, datetime]]) -> None:
        """Record the newest ``(value, at)`` of each ``(device_id, pin)`` in memory only: the
        caller has them stored in a history transaction (:mod:`backend.history.writer`). An
        older point (a late timestamped one) never replaces a newer value. A value may be a
        Double's number, formatted when it is read (:func:`~backend.templates.values.shown_text`).

        The device's stored values need not be in memory: reading them later (:meth:`get_all`)
        keeps the newer of each pin, and no write overwrites a newer stored row."""
        self._put(newest, None)

    def _put(
        self, newest: Mapping[tuple[int, int], tuple[str | float, datetime]], dirty: set[tuple[int, int]] | None
    ) -> None:
        by_device = self._values
        for key, value in newest.items():
            device_id, pin = key
            pins = by_device.get(device_id)
            if pins is None:  # not read yet, or forgotten since (deleted: the flush drops it again)
                pins = by_device[device_id] = {}
            current = pins.get(pin)
            if current is None or current[1] <= value[1]:  # an older point never wins
                pins[pin] = value
                if dirty is not None:
                    dirty.add(key)

    async def erase(self, device_id: int, pin: int) -> None:
        """Forget the latest value of a pin (``ds/<name>/erase``); history is kept."""
        if device_id not in self._loaded:
            await self._load(device_id)
        self._values.get(device_id, {}).pop(pin, None)
        self._dirty.discard((device_id, pin))
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM datastream_value WHERE device_id = %s AND pin = %s", (device_id, pin))

    def start(self) -> None:
        """Start the background flusher."""
        self._task = asyncio.create_task(self._run(), name="latest-values")

    async def stop(self) -> None:
        """Write what is dirty and stop."""
        task, self._task = self._task, None
        await cancel(task)
        await self.flush()

    async def flush(self) -> None:
        """Write every dirty value now."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        rows = [(d, p, db_text(shown_text(self._values[d][p][0])), self._values[d][p][1]) for d, p in sorted(dirty)]
        try:
            try:
                await self._upsert(rows)
            except psycopg.errors.ForeignKeyViolation:
                await self._upsert(await self._forget_deleted(rows))
        except (psycopg.OperationalError, OSError) as exc:
            log.warning("latest values not written yet (%s); will retry", exc)
            self._dirty |= dirty
        except psycopg.Error as exc:  # a value the database refuses: keep the others
            log.error("latest values refused as a batch (%s); writing them one by one", exc)
            await self._upsert_each(rows)

    async def _upsert_each(self, rows: list[tuple[int, int, str, datetime]]) -> None:
        for row in rows:
            try:
                await self._upsert([row])
            except psycopg.Error as exc:
                log.error("dropped the latest value of device %s pin V%s: %s", row[0], row[1], exc)

    async def _upsert(self, rows: list[tuple[int, int, str, datetime]]) -> None:
        async with self.pool.connection() as conn:
            async with conn.transaction():
                async with conn.cursor() as cur:
                    await cur.executemany(UPSERT_SQL, rows)

    async def _forget_deleted(self, rows: list[tuple[int, int, str, datetime]]) -> list[tuple[int, int, str, datetime]]:
        """Drop the values of devices deleted since they were received."""
        ids = sorted({r[0] for r in rows})
        async with self.pool.connection() as conn:
            found = await (await conn.execute("SELECT id FROM device WHERE id = ANY(%s)", (ids,))).fetchall()
        alive = {r[0] for r in found}
        for device_id in set(ids) - alive:
            self._values.pop(device_id, None)
            self._loaded.discard(device_id)
        return [r for r in rows if r[0] in alive]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:
                log.exception("latest value flush failed")

    async def _load(self, device_id: int) -> None:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT pin, value, updated_at FROM datastream_value WHERE device_id = %s", (device_id,)
                )
            ).fetchall()
        known = self._values.setdefault(device_id, {})
        for pin, value, updated_at in rows:
            if pin not in known or known[pin][1] < updated_at:
                known[pin] = (wire_text(value), updated_at)
        self._loaded.add(device_id)
