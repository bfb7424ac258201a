"""Rollups maintained on write, and retention of partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.db.engine import Database
from backend.history.partitions import HISTORY, MINUTE, drop_expired, ensure_partitions, partitions
from backend.history.rollup import aggregate, bucket_of
from backend.history.writer import HistoryRow, HistoryWriter

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


def test_buckets_are_aligned_to_the_epoch() -> None:
    assert bucket_of(T0 + timedelta(seconds=59.9), 60) == T0
    assert bucket_of(T0 + timedelta(seconds=60), 60) == T0 + timedelta(minutes=1)
    assert bucket_of(T0 + timedelta(minutes=59), 3600) == T0


def test_aggregate_keeps_min_max_sum_count_and_last_by_time() -> None:
    points = [(1, 0, T0 + timedelta(seconds=s), v, None, True) for s, v in ((10, 5.0), (5, 9.0), (30, -1.0), (20, 3.0))]
    agg = aggregate(points, 60)[(1, 0, int(T0.timestamp()))]
    assert (agg.min, agg.max, agg.sum, agg.count, agg.last) == (-1.0, 9.0, 16.0, 4, -1.0)


async def test_rollups_merge_across_batches_and_raw_flag_is_honoured(fresh_db: str) -> None:
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool)
        writer = HistoryWriter(db.pool)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        await writer.write(
            [
                HistoryRow(1, 0, now + timedelta(seconds=1), 10.0, None, raw=False),
                HistoryRow(1, 0, now + timedelta(seconds=2), 20.0, None, raw=False),
            ]
        )
        await writer.write(
            [
                HistoryRow(1, 0, now + timedelta(seconds=3), 0.0, None, raw=False),
                HistoryRow(1, 0, now + timedelta(seconds=0.5), 99.0, None, raw=False),  # late point
                HistoryRow(1, 1, now, 1.0, None, raw=True),
                HistoryRow(1, 2, now, None, "text", raw=True),
            ]
        )
        async with db.pool.connection() as conn:
            minute = await (
                await conn.execute("SELECT pin, min, max, sum, count, last FROM history_minute ORDER BY pin")
            ).fetchall()
            hour = await (await conn.execute("SELECT pin, count FROM history_hour ORDER BY pin")).fetchall()
            raw = await (await conn.execute("SELECT pin FROM history ORDER BY pin")).fetchall()
        assert minute == [(0, 0.0, 99.0, 129.0, 4, 0.0), (1, 1.0, 1.0, 1.0, 1, 1.0)]
        assert hour == [(0, 4), (1, 1)]
        assert raw == [(1,), (2,)]  # pin 0 is not "save raw": only its rollups are kept


async def test_retention_drops_old_partitions_and_old_default_rows(fresh_db: str) -> None:
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=40, days_ahead=1)
        writer = HistoryWriter(db.pool)
        now = datetime.now(UTC)
        await writer.write(
            [HistoryRow(1, 0, now - timedelta(days=d), float(d), None) for d in (0, 10, 35, 39)]
            + [HistoryRow(1, 0, now - timedelta(days=400), 400.0, None)]
        )  # default partition
        cutoff = now - timedelta(days=30)
        dropped = await drop_expired(db.pool, HISTORY, cutoff)
        assert dropped and all(name.startswith("history_2") for name in dropped)
        async with db.pool.connection() as conn:
            left = await (await conn.execute("SELECT value FROM history ORDER BY value")).fetchall()
            assert left == [(0.0,), (10.0,)]
            remaining = await partitions(conn, HISTORY)
        assert all(end.astimezone(UTC) > cutoff for _, _, end in remaining)
        assert await drop_expired(db.pool, MINUTE, now - timedelta(days=365)) == []


@pytest.mark.parametrize("days_ahead", [0, 40])
async def test_partitions_cover_the_requested_window(fresh_db: str, days_ahead: int) -> None:
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=0, days_ahead=days_ahead)
        async with db.pool.connection() as conn:
            days = await partitions(conn, HISTORY)
            months = await partitions(conn, MINUTE)
        assert len(days) == days_ahead + 1
        last_day = datetime.now(UTC).date() + timedelta(days=days_ahead)
        assert months[-1][2].date() > last_day


async def test_a_partition_is_made_even_when_its_rows_arrived_early(fresh_db: str) -> None:
    """Points stamped days ahead (timestamped imports allow a month) land in the default
    partition; creating that day's partition later must move them, not give up."""
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=0, days_ahead=0)
        later = datetime.now(UTC) + timedelta(days=10)
        writer = HistoryWriter(db.pool)
        await writer.write([HistoryRow(1, 0, later + timedelta(seconds=i), float(i), None) for i in range(5)])
        created = await ensure_partitions(db.pool, days_back=0, days_ahead=12)
        name = f"history_{later:%Y%m%d}"
        assert name in created
        async with db.pool.connection() as conn:
            where = dict(
                await (
                    await conn.execute("SELECT tableoid::regclass::text, count(*) FROM history GROUP BY 1")
                ).fetchall()
            )
            minute = dict(
                await (
                    await conn.execute("SELECT tableoid::regclass::text, count(*) FROM history_minute GROUP BY 1")
                ).fetchall()
            )
        assert where == {name: 5}
        assert "history_minute_default" not in minute
