"""Packing finished days of history: every read answers the same before and after, the raw
partition is gone, the points take a fraction of the space, and retention covers packed days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from backend.db.engine import Database
from backend.history import packing
from backend.history.maintenance import Retention, maintain
from backend.history.packing import pack_closed_days
from backend.history.partitions import HISTORY, ensure_partitions, partitions
from backend.history.queries import raw_page, series, stream_raw
from backend.history.writer import HistoryRow, HistoryWriter
from tests.support.provision import provision_async, thermostat_doc

DAY = timedelta(days=1)


def midnight(days_ago: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - days_ago * DAY


def day_of_points(device: int, start: datetime) -> list[HistoryRow]:
    """A day of one device: numbers on pin 0 every 20 s (with equal timestamps and a NULL
    value), texts on pin 1 every 10 minutes, and a number+text point on pin 2."""
    rows = [
        HistoryRow(device, 0, start + timedelta(seconds=20 * i, microseconds=i % 7), float(i % 500), None)
        for i in range(4320)
    ]
    rows += [
        HistoryRow(device, 0, start + timedelta(hours=5), 1e6, None),  # same ts as another point
        HistoryRow(device, 0, start + timedelta(hours=5), None, None),
    ]
    rows += [
        HistoryRow(device, 1, start + timedelta(minutes=10 * i), None, f"line {i}\nwith \u00e9") for i in range(144)
    ]
    rows.append(
        HistoryRow(
            device, 2, start + timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999), 3.5, "3.5\x00lat"
        )
    )
    return rows


async def readings(db: Database, device: int, start: datetime, end: datetime) -> dict[str, object]:
    """Everything the query layer answers about ``device`` in [start, end)."""
    out: dict[str, object] = {}
    for pin in (0, 1, 2):
        pages, cursor = [], None
        while True:
            page, cursor = await raw_page(db.pool, device, pin, start, end, limit=997, cursor=cursor)
            pages += [(p.ts, p.value, p.text) for p in page]
            if cursor is None:
                break
        out[f"pages {pin}"] = pages
        out[f"stream {pin}"] = sorted(
            [
                (p.ts, p.value or 0.0, p.text or "")
                async for p in stream_raw(db.pool, device, pin, start, end, chunk=500)
            ]
        )
        out[f"buckets {pin}"] = (await series(db.pool, device, pin, start, end, 5000)).buckets
    return out


async def sizes(db: Database) -> tuple[int, int]:
    """Bytes of raw history and of packed history, tables and indexes."""
    async with db.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)) FILTER (WHERE inhparent = 'history'::regclass), 0),"
                " coalesce(sum(pg_total_relation_size(inhrelid)) FILTER (WHERE inhparent = 'history_packed'::regclass), 0)"
                " FROM pg_inherits"
            )
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def test_packed_days_read_exactly_as_raw_ones_in_a_fraction_of_the_space(fresh_db: str) -> None:
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=4, days_ahead=1)
        writer = HistoryWriter(db.pool, batch_rows=5000)
        for days_ago in (3, 2):
            for device in (1, 2):
                await writer.write(day_of_points(device, midnight(days_ago)))
        await writer.write(day_of_points(1, midnight(0)))  # today: stays raw
        start, end = midnight(3) - timedelta(hours=1), midnight(-1)
        before = {device: await readings(db, device, start, end) for device in (1, 2)}
        raw_before, _ = await sizes(db)

        packed = await pack_closed_days(db.pool, keep_raw_days=1)

        assert sorted(packed) == [HISTORY.partition_name(midnight(d).date()) for d in (4, 3, 2)]
        async with db.pool.connection() as conn:
            names = [name for name, *_ in await partitions(conn, HISTORY)]
        assert not set(packed) & set(names)  # the raw partitions are gone
        after = {device: await readings(db, device, start, end) for device in (1, 2)}
        assert after == before
        raw_after, packed_bytes = await sizes(db)
        points = 2 * 2 * len(day_of_points(1, midnight(0)))
        per_point = packed_bytes / points
        print(f"\nraw {(raw_before - raw_after) / points:.1f} B/point -> packed {per_point:.1f} B/point")
        assert per_point < (raw_before - raw_after) / points / 3
        assert await pack_closed_days(db.pool, keep_raw_days=1) == []  # nothing left to pack


async def test_late_points_for_a_packed_day_are_read_and_packed_later(fresh_db: str) -> None:
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=3, days_ahead=1)
        writer = HistoryWriter(db.pool)
        day = midnight(2)
        await writer.write([HistoryRow(5, 0, day + timedelta(hours=1), 1.0, None)])
        await pack_closed_days(db.pool)
        await writer.write([HistoryRow(5, 0, day + timedelta(hours=1, seconds=1), 2.0, None)])  # late: default
        page, _ = await raw_page(db.pool, 5, 0, day, day + DAY)
        assert [p.value for p in page] == [1.0, 2.0]
        await pack_closed_days(db.pool)
        async with db.pool.connection() as conn:
            left = await (await conn.execute("SELECT count(*) FROM history_default")).fetchone()
            segments = await (await conn.execute("SELECT count(*) FROM history_packed WHERE device_id = 5")).fetchone()
        assert left == (0,) and segments == (2,)  # one hour, packed twice: both segments are read
        page, _ = await raw_page(db.pool, 5, 0, day, day + DAY)
        assert [p.value for p in page] == [1.0, 2.0]


async def test_retention_drops_packed_days_and_trims_templates_that_keep_less(fresh_db: str) -> None:
    short = thermostat_doc("short")
    short["templates"][0]["raw_retention_days"] = 3
    kitchen = (await provision_async(fresh_db, thermostat_doc("kitchen"))).devices[0].id
    shed = (await provision_async(fresh_db, short)).devices[0].id
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=12, days_ahead=1)
        writer = HistoryWriter(db.pool)
        for days_ago in (10, 5):
            await writer.write(
                [
                    HistoryRow(device, 0, midnight(days_ago) + timedelta(hours=2), float(days_ago), None)
                    for device in (kitchen, shed)
                ]
            )
        await pack_closed_days(db.pool)  # both days packed, then retention comes
        result = await maintain(db.pool, Retention(raw_days=7, rollup_days=365))
        assert packing.PACKED.partition_name(midnight(10).date()) in result["dropped"]
        for device, expected in ((kitchen, [5.0]), (shed, [])):
            page, _ = await raw_page(db.pool, device, 0, midnight(12), midnight(0))
            assert [p.value for p in page] == expected


async def test_packing_waits_for_nobody_and_keeps_a_day_being_read(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export holding a day open is never blocked: packing that day gives up and retries."""
    monkeypatch.setattr(packing, "LOCK_TIMEOUT", "200ms")
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=3, days_ahead=1)
        day = midnight(2)
        await HistoryWriter(db.pool).write(
            [HistoryRow(6, 0, day + timedelta(minutes=i), float(i), None) for i in range(100)]
        )
        name = HISTORY.partition_name(day.date())
        with psycopg.connect(fresh_db) as reader:
            reader.execute(f"SELECT count(*) FROM {name}")  # holds ACCESS SHARE until commit
            assert name not in await pack_closed_days(db.pool)
            reader.commit()
        assert name in await pack_closed_days(db.pool)
        values = [p.value async for p in stream_raw(db.pool, 6, 0, day, day + DAY)]
        assert values == [float(i) for i in range(100)]


async def test_reads_use_the_indexes_of_both_forms(fresh_db: str) -> None:
    """history_points() is inlined: both branches are index scans, not whole-table scans."""
    async with Database(fresh_db) as db, db.pool.connection() as conn:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await (
                await conn.execute("EXPLAIN SELECT * FROM history_points(1, 0, now() - interval '1 day', now())")
            ).fetchall()
        )
    assert "Function Scan on history_points" not in plan, plan
    # an index or bitmap index scan on each (which one depends on the statistics of the moment)
    assert "history_default_device_id_pin_ts_idx" in plan, plan
    assert "history_packed_default_device_id_pin_hour_idx" in plan, plan
