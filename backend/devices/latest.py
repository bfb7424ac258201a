"""Latest datastream values: held in memory, stored in ``datastream_value``.

Every value goes into the in-memory map at once (so reads see it immediately,
:meth:`LatestValues.remember_many`). It is stored by whoever stores the value: values recorded
through :meth:`backend.devices.data.DataService.record` (devices over MQTT, the HTTP device
API's ``update``, the console, the platform API) are upserted by the history writer, the newest
value of each datastream of a batch in the transaction that commits the batch's rows
(``backend.history.writer``); the HTTP device API's import of past points does the same in its
own transaction (``write_rows``). A device's PUBACK and an HTTP 200 wait for that commit, so
after a crash, a power loss, or in a backup's snapshot, the latest value is the last one
acknowledged and agrees with history (README, "What each QoS promises"). It costs one
multi-row statement a batch (README, "Performance").

Until 2026-12-06 every value was written on its own, coalesced by a flusher once a second, so a
latest value could be a second older than history and than what the device was told was
stored. Rebuilding latest values from history at startup would not do: with "Save Raw Data" off
history holds only per-minute averages, and strings are not history at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from psycopg_pool import AsyncConnectionPool

from backend.templates.values import shown_text, wire_text


class Latest(NamedTuple):
    """The latest value of one datastream (a named tuple: made once per ingested value)."""

    value: str
    updated_at: datetime


class LatestValues:
    """In-memory latest values, read from ``datastream_value`` once a device's are asked for."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._values: dict[int, dict[int, tuple[str | float, datetime]]] = {}
        """By device and pin, as plain tuples (a :class:`Latest` costs more to make, once a
        value); a Double's value may wait as its number, formatted when read."""
        self._loaded: set[int] = set()

    async def get_all(self, device_id: int) -> dict[int, Latest]:
        """Every stored value of the device, by pin."""
        if device_id not in self._loaded:
            await self._load(device_id)
        return {pin: Latest(shown_text(value), at) for pin, (value, at) in self._values.get(device_id, {}).items()}

    async def get(self, device_id: int, pin: int) -> Latest | None:
        """The latest value of one pin, or None."""
        return (await self.get_all(device_id)).get(pin)

    def remember_many(self, newest: Mapping[tuple[int, int], tuple[str | float, datetime]]) -> None:
        """Record the newest ``(value, at)`` of each ``(device_id, pin)`` in memory only: the
        caller has them stored in a history transaction (:mod:`backend.history.writer`). An
        older point (a late timestamped one) never replaces a newer value. A value may be a
        Double's number, formatted when it is read (:func:`~backend.templates.values.shown_text`).

        The device's stored values need not be in memory: reading them later (:meth:`get_all`)
        keeps the newer of each pin, and no write overwrites a newer stored row."""
        by_device = self._values
        for key, value in newest.items():
            device_id, pin = key
            pins = by_device.get(device_id)
            if pins is None:  # not read yet
                pins = by_device[device_id] = {}
            current = pins.get(pin)
            if current is None or current[1] <= value[1]:  # an older point never wins
                pins[pin] = value

    async def erase(self, device_id: int, pin: int) -> None:
        """Forget the latest value of a pin (``ds/<name>/erase``); history is kept."""
        if device_id not in self._loaded:
            await self._load(device_id)
        self._values.get(device_id, {}).pop(pin, None)
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM datastream_value WHERE device_id = %s AND pin = %s", (device_id, pin))

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
