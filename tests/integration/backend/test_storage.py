"""Storage against a real PostgreSQL: migrations, models, COPY history, latest values."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlmodel import SQLModel

import backend.server.tables  # noqa: F401
from backend.db.engine import Database
from backend.db.migrate import available, current_version, migrate
from backend.devices.latest import LatestValues
from backend.history.writer import AcksAfterCommit, HistoryRow, HistoryWriter, ensure_partitions, write_rows
from tests.support.provision import provision_async, thermostat_doc


def test_migrations_from_an_empty_database_are_idempotent(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    assert current_version(fresh_db) == 0
    assert migrate(fresh_db) == [m.version for m in available()]
    assert migrate(fresh_db) == []
    assert current_version(fresh_db) == len(available())


def test_models_match_the_migrated_schema(fresh_db: str) -> None:
    """The SQLModel classes and the SQL migrations must describe the same columns."""
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
    db_cols = {(t, c): n == "YES" for t, c, n in rows}
    for table in SQLModel.metadata.sorted_tables:
        for column in table.columns:
            key = (table.name, column.name)
            assert key in db_cols, f"model column {key} missing from the migrations"
        model_cols = {c.name for c in table.columns}
        db_table_cols = {c for t, c in db_cols if t == table.name}
        assert db_table_cols == model_cols, f"{table.name}: schema and model differ"


async def test_history_copy_lands_in_daily_partitions(fresh_db: str) -> None:
    async with Database(fresh_db) as db:
        created = await ensure_partitions(db.pool)
        assert len([c for c in created if c.startswith("history_2")]) == 5  # daily raw partitions
        assert any(c.startswith("history_minute_") for c in created)  # monthly rollup partitions
        assert any(c.startswith("history_hour_") for c in created)
        assert await ensure_partitions(db.pool) == []
        writer = HistoryWriter(db.pool, batch_rows=100, flush_seconds=0.05)
        now = datetime.now(UTC)
        rows = [HistoryRow(1, 0, now - timedelta(seconds=i), float(i), None) for i in range(250)]
        rows.append(HistoryRow(1, 2, now, None, "text value"))
        rows.append(HistoryRow(1, 0, now - timedelta(days=400), 1.0, None))  # far past: default partition
        writer.start()
        for row in rows:
            await writer.add_many([row])
        await writer.stop()
        assert writer.rows_written == len(rows)
        async with db.pool.connection() as conn:
            parts = dict(
                await (
                    await conn.execute("SELECT tableoid::regclass::text, count(*) FROM history GROUP BY 1")
                ).fetchall()
            )
        assert parts.get("history_default") == 1
        assert sum(parts.values()) == len(rows)
        assert parts[f"history_{now:%Y%m%d}"] >= 1


async def test_latest_values_never_go_back_in_time(fresh_db: str) -> None:
    result = await provision_async(fresh_db, thermostat_doc())
    device_id = result.devices[0].id
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        t0 = datetime.now(UTC)
        async with db.pool.connection() as conn, conn.transaction():  # as the history writer stores them
            await write_rows(conn, [HistoryRow(device_id, 0, t0, 49.0, None)], {(device_id, 0): (49.0, t0)})
        latest = LatestValues(db.pool)
        latest.remember_many({(device_id, 0): (48.0, t0 - timedelta(seconds=1))})  # a late point, in memory
        assert (await latest.get(device_id, 0)).value == "49.0"  # type: ignore[union-attr]  # the stored is newer
        latest.remember_many({(device_id, 0): (50.0, t0 + timedelta(seconds=1))})
        assert (await latest.get(device_id, 0)).value == "50.0"  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["not a url", "mysql://x/y"])
def test_database_refuses_non_postgres_urls(bad: str) -> None:
    with pytest.raises(ValueError):
        Database(bad)


async def test_multi_values_with_nul_are_stored_and_read_back(fresh_db: str) -> None:
    """PostgreSQL text cannot hold NUL, Blynk's multi-value separator (regression: a location
    value once killed the history writer and blocked every latest-value write)."""
    result = await provision_async(fresh_db, thermostat_doc())
    device_id = result.devices[0].id
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        now = datetime.now(UTC)
        async with db.pool.connection() as conn, conn.transaction():
            await write_rows(conn, [], {(device_id, 3): ("24.1\x0056.9", now), (device_id, 0): (1.0, now)})
        reread = LatestValues(db.pool)
        assert (await reread.get(device_id, 3)).value == "24.1\x0056.9"  # type: ignore[union-attr]
        assert (await reread.get(device_id, 0)).value == "1.0"  # type: ignore[union-attr]
        writer = HistoryWriter(db.pool)
        await writer.write([HistoryRow(device_id, 2, now, None, "a\x00b")])
        async with db.pool.connection() as conn:
            row = await (await conn.execute("SELECT text_value FROM history")).fetchone()
        assert row == ("a\x1fb",)


async def test_history_writer_keeps_good_rows_when_one_is_refused(fresh_db: str) -> None:
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        writer = HistoryWriter(db.pool, batch_rows=10, flush_seconds=0.05)
        now = datetime.now(UTC)
        writer.start()
        await writer.add_many([HistoryRow(1, 0, now, 1.0, None)])
        await writer.add_many([HistoryRow(1, 0, None, 2.0, None)])  # type: ignore[arg-type]  # ts is NOT NULL
        await writer.add_many([HistoryRow(1, 0, now, 3.0, None)])
        await writer.stop()
        writer.start()  # and it still writes afterwards
        await writer.add_many([HistoryRow(1, 0, now, 4.0, None)])
        await writer.stop()
        async with db.pool.connection() as conn:
            rows = await (await conn.execute("SELECT value FROM history ORDER BY value")).fetchall()
        assert rows == [(1.0,), (3.0,), (4.0,)]


async def test_stopping_the_writer_loses_no_row_even_mid_batch(fresh_db: str) -> None:
    """Regression: stop() used to cancel the flusher while it wrote a batch, losing it."""
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        writer = HistoryWriter(db.pool, batch_rows=500, flush_seconds=0.01)
        now = datetime.now(UTC)
        writer.start()
        for i in range(20_000):
            await writer.add_many([HistoryRow(1, 0, now, float(i), None)])
        while writer._queue.qsize() == 20_000:  # let the flusher take its first batch...
            await asyncio.sleep(0)
        assert writer.rows_written == 0  # ...and stop while that batch is being written
        await writer.stop()
        async with db.pool.connection() as conn:
            count = await (await conn.execute("SELECT count(*) FROM history")).fetchone()
        assert count == (20_000,) and writer.rows_written == 20_000


async def test_after_commit_runs_in_order_once_the_rows_are_stored(fresh_db: str) -> None:
    """The ingest acknowledges a message through ``after_commit``: never before its rows are
    in the database, always in the order the messages came."""
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        writer = HistoryWriter(db.pool, batch_rows=3, flush_seconds=0.05)
        now = datetime.now(UTC)
        seen: list[tuple[int, int]] = []

        async def stored() -> int:
            async with db.pool.connection() as conn:
                row = await (await conn.execute("SELECT count(*) FROM history")).fetchone()
            return int(row[0]) if row else 0

        writer.after_commit(lambda: seen.append((0, -1)))  # nothing pending: at once
        assert seen == [(0, -1)]
        writer.start()
        for i in range(1, 8):
            await writer.add_many([HistoryRow(1, 0, now, float(i), None)])
            writer.after_commit(lambda i=i: seen.append((i, writer.settled)))
        await writer.stop()
        assert [i for i, _ in seen] == list(range(8))
        assert all(settled >= i for i, settled in seen[1:])  # each ran once its own row was settled
        assert await stored() == 7


async def test_acks_after_commit_come_in_order_and_only_once_their_rows_are_stored(fresh_db: str) -> None:
    """What the ingest loop owes the broker: the receipts of a batch go out after the rows
    added before them are settled, never earlier, and receipts keep their order (messages
    without rows too)."""
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        writer = HistoryWriter(db.pool, batch_rows=4, flush_seconds=0.05)
        now = datetime.now(UTC)
        done: list[tuple[int, int]] = []  # (receipt, rows settled when it went out)
        acks = AcksAfterCommit(writer, lambda receipts: done.extend((r, writer.settled) for r in receipts))
        acks.add_all([0])  # nothing pending: at once
        assert done == [(0, 0)]
        acks.add_all([])  # nothing to acknowledge: nothing happens
        writer.start()
        owed: dict[int, int] = {}
        for first in range(1, 40, 2):  # batches of two messages
            for receipt in (first, first + 1):
                if receipt % 3:  # two messages in three make a row; the third (an event, say) does not
                    await writer.add_many([HistoryRow(1, 0, now + timedelta(seconds=receipt), float(receipt), None)])
            owed[first] = owed[first + 1] = writer.accepted
            acks.add_all([first, first + 1])
        await writer.stop()
        assert [receipt for receipt, _ in done] == list(range(41))
        assert all(settled >= owed[receipt] for receipt, settled in done[1:])


async def test_batches_in_flight_together_keep_rollups_exact(fresh_db: str) -> None:
    """Two batches written at once fold into the same minute and hour rows; each merges in key
    order (one waits for the other), so every point is counted once, whatever order the
    batches list their devices in."""
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        writer = HistoryWriter(db.pool, batch_rows=400, flush_seconds=0.01, in_flight=2)
        start = datetime.now(UTC).replace(second=0, microsecond=0)
        writer.start()
        values: dict[int, list[float]] = {}
        for i in range(8_000):
            group = i // 400  # each batch lists the devices ascending, the next descending
            device = (i % 40) + 1 if group % 2 == 0 else 40 - (i % 40)
            value = float(i % 97)
            values.setdefault(device, []).append(value)
            await writer.add_many([HistoryRow(device, 0, start + timedelta(milliseconds=i), value, None)])
        await writer.stop()
        async with db.pool.connection() as conn:
            for table in ("history_minute", "history_hour"):
                rows = await (
                    await conn.execute(
                        f"SELECT device_id, sum(count), min(min), max(max), sum(sum) FROM {table} "  # noqa: S608
                        "GROUP BY device_id ORDER BY device_id"
                    )
                ).fetchall()
                assert rows == [(d, len(v), min(v), max(v), sum(v)) for d, v in sorted(values.items())], table
        assert writer.rows_written == writer.settled == 8_000
