"""Latest values written in the history transaction (``backend.history.writer``), against a
real PostgreSQL: committed before the rows' acknowledgement is due, never replaced by an older
value (batches may commit out of order), a device deleted meanwhile skipped without failing
its batch, and an erase not undone by a value still on its way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from backend.db.engine import Database
from backend.devices.data import DataService
from backend.devices.latest import LatestValues
from backend.devices.registry import DeviceInfo
from backend.history.writer import HistoryRow, HistoryWriter, ensure_partitions, write_rows
from backend.templates.values import DatastreamSpec, DatastreamType
from tests.support.provision import provision_async, thermostat_doc


class Nowhere:
    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        pass


def stored(url: str, device_id: int) -> dict[int, tuple[str, datetime]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pin, value, updated_at FROM datastream_value WHERE device_id = %s", (device_id,)
        ).fetchall()
    return {pin: (value, at) for pin, value, at in rows}


async def test_a_latest_value_is_committed_when_its_rows_are_settled(fresh_db: str) -> None:
    device_id = (await provision_async(fresh_db, thermostat_doc())).devices[0].id
    now = datetime.now(UTC)
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        writer = HistoryWriter(db.pool, flush_seconds=3600)  # nothing but the history commit writes it
        latest = LatestValues(db.pool)
        data = DataService(latest, writer, Nowhere())
        writer.start()
        try:
            label = DatastreamSpec(2, "Label", DatastreamType.STRING)  # not history: a marker row carries it
            temperature = DatastreamSpec(0, "Temperature", DatastreamType.DOUBLE, save_raw=True)
            await data.record([((device_id, temperature), "21.5", now), ((device_id, label), "door open", now)])
            await writer.settled_now()
            assert stored(fresh_db, device_id) == {0: ("21.5", now), 2: ("door open", now)}
        finally:
            await writer.stop()


async def test_an_older_value_never_replaces_a_newer_one_and_a_deleted_device_is_skipped(fresh_db: str) -> None:
    device_id = (await provision_async(fresh_db, thermostat_doc())).devices[0].id
    now = datetime.now(UTC)
    gone = device_id + 1000
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        async with db.pool.connection() as conn:
            async with conn.transaction():
                await write_rows(conn, [HistoryRow(device_id, 0, now, 2.0, None)], {(device_id, 0): (2.0, now)})
            async with conn.transaction():  # a batch that commits later with an older value
                older = now - timedelta(seconds=1)
                rows: list[Any] = [HistoryRow(device_id, 0, older, 1.0, None), HistoryRow(gone, 0, now, 5.0, None)]
                await write_rows(conn, rows, {(device_id, 0): (1.0, older), (gone, 0): ("5", now)})
            count = await (
                await conn.execute("SELECT count(*) FROM history WHERE device_id = ANY(%s)", ([device_id, gone],))
            ).fetchone()
    assert stored(fresh_db, device_id) == {0: ("2.0", now)}
    assert stored(fresh_db, gone) == {}
    assert count is not None and count[0] == 3  # the batch was not refused for the missing device


async def test_an_erase_is_not_undone_by_a_value_still_on_its_way(fresh_db: str) -> None:
    result = await provision_async(fresh_db, thermostat_doc())
    device_id = result.devices[0].id
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        writer = HistoryWriter(db.pool, flush_seconds=3600)
        latest = LatestValues(db.pool)
        data = DataService(latest, writer, Nowhere())
        label = DatastreamSpec(2, "Label", DatastreamType.STRING)
        device = DeviceInfo(id=device_id, name="Kitchen", org_id=0, template_id=0, template_name="Thermostat")
        writer.start()
        try:
            await data.record([((device_id, label), "door open", None)])  # queued, not yet written
            await data.erase(device, label)
            await writer.settled_now()
        finally:
            await writer.stop()
        assert stored(fresh_db, device_id) == {}
        assert await LatestValues(db.pool).get(device_id, 2) is None
