"""History benchmarks: write throughput against raw binary COPY, chart query time over a
year, and bytes on disk per stored point. Prints figures; asserts nothing.

    .venv/bin/python tests/bench/bench_history.py [--rows 500000] [--runs 20]

Runs an embedded PostgreSQL in .pytest-data/bench (removed afterwards). Figures depend on
the machine and its load: compare the columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import progress, raw_copy, scratch_database  # noqa: E402  (also puts the repository on sys.path)

from backend.db.engine import Database  # noqa: E402
from backend.db.migrate import migrate  # noqa: E402
from backend.history.packing import pack_closed_days  # noqa: E402
from backend.history.partitions import ensure_partitions  # noqa: E402
from backend.history.queries import series  # noqa: E402
from backend.history.writer import HistoryRow, HistoryWriter  # noqa: E402
from backend.settings import Settings  # noqa: E402

BATCH = Settings().history_batch_rows  # the app's batch, for the writer and the raw COPY alike


def rows_for(n: int, devices: int = 100, start: datetime | None = None) -> list[HistoryRow]:
    start = start or datetime.now(UTC) - timedelta(hours=2)
    return [
        HistoryRow(i % devices + 1, i % 4, start + timedelta(milliseconds=10 * i), float(i % 1000), None)
        for i in range(n)
    ]


async def writer_path(db: Database, rows: list[HistoryRow]) -> float:
    """The history writer: raw COPY plus minute and hour rollups, in one transaction a batch."""
    writer = HistoryWriter(db.pool, batch_rows=BATCH)
    t0 = time.perf_counter()
    writer.start()
    for i, row in enumerate(rows):
        await writer.add_many([row])
        if i % 50_000 == 0:
            progress("writer", i, len(rows))
    await writer.stop()
    return len(rows) / (time.perf_counter() - t0)


async def storage_per_point(db: Database) -> tuple[int, float]:
    async with db.pool.connection() as conn:
        count = (await (await conn.execute("SELECT count(*) FROM history")).fetchone())[0]  # type: ignore[index]
        size = (
            await (
                await conn.execute(
                    "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                    "WHERE inhparent = 'history'::regclass"
                )
            ).fetchone()
        )[0]  # type: ignore[index]
    return count, size / count


def sensor_day(devices: int = 100, pins: int = 2, every: int = 30) -> list[HistoryRow]:
    """A day of sensor readings three days back: one point per pin about every ``every``
    seconds (jittered to the microsecond), values with two decimals and noise, as a
    thermometer sends them (incompressible enough to be honest about packing)."""
    rng = random.Random(7)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    rows = []
    for device in range(1, devices + 1):
        for pin in range(pins):
            level = rng.uniform(-10, 35)
            for step in range(86_400 // every):
                level += rng.gauss(0, 0.05)
                ts = day + timedelta(seconds=step * every, microseconds=rng.randrange(1_000_000))
                rows.append(HistoryRow(device, pin, ts, round(level, 2), None))
    return rows


async def packed_per_point(db: Database) -> tuple[float, int]:
    """Bytes a point takes once its day is over and packed (:func:`sensor_day` points)."""
    async with db.pool.connection() as conn:
        await conn.execute("TRUNCATE history, history_packed, history_minute, history_hour")
    rows = sensor_day()
    writer = HistoryWriter(db.pool, batch_rows=BATCH)
    for i in range(0, len(rows), BATCH):
        await writer.write(rows[i : i + BATCH])
        progress("a day of sensor points", i + BATCH, len(rows))
    await pack_closed_days(db.pool, keep_raw_days=1)
    async with db.pool.connection() as conn:
        size = (
            await (
                await conn.execute(
                    "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
                    "WHERE inhparent = 'history_packed'::regclass"
                )
            ).fetchone()
        )[0]  # type: ignore[index]
        points = (await (await conn.execute("SELECT sum(cardinality(offsets)) FROM history_packed")).fetchone())[0]  # type: ignore[index]
    assert points == len(rows), (points, len(rows))
    return float(size) / points, points


async def year_query(db: Database, runs: int) -> tuple[float, float, int, str]:
    """A year at one point per minute (525,600 points), reduced to 1,000 buckets."""
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=365)
    writer = HistoryWriter(db.pool, batch_rows=20_000)
    writer.start()
    for i in range(525_600):
        await writer.add_many([HistoryRow(9999, 7, start + timedelta(minutes=i), float(i % 97), None, raw=False)])
        if i % 100_000 == 0:
            progress("year of minutes", i, 525_600)
    await writer.stop()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = await series(db.pool, 9999, 7, start, end, 1000, save_raw=False)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], len(result.buckets), result.source


async def main(args: argparse.Namespace, url: str) -> None:
    migrate(url)
    async with Database(url, pool_size=4) as db:
        await ensure_partitions(db.pool, days_back=370, days_ahead=1)
        rows = rows_for(args.rows)
        copy_rate = await raw_copy(db.pool, [(r.device_id, r.pin, r.ts, r.value, None) for r in rows], BATCH)
        async with db.pool.connection() as conn:
            await conn.execute("TRUNCATE history, history_minute, history_hour")
        writer_rate = await writer_path(db, rows)
        count, per_point = await storage_per_point(db)
        packed, packed_count = await packed_per_point(db)
        p50, p95, buckets, source = await year_query(db, args.runs)
    print(f"\nhistory benchmarks, {args.rows:,} rows of 100 devices x 4 pins, batches of {BATCH}")
    print(f"  raw binary COPY                     {copy_rate:>12,.0f} rows/s")
    print(
        f"  history writer (COPY + 2 rollups)   {writer_rate:>12,.0f} rows/s   "
        f"({writer_rate / copy_rate:.0%} of raw COPY)"
    )
    print(
        f"  bytes on disk per raw point         {per_point:>12.1f}   ({count:,} rows, table + index; today's partition)"
    )
    print(
        f"  bytes on disk per packed point      {packed:>12.1f}   ({packed_count:,} sensor points, 100 devices x "
        "2 pins every 30 s for a day, once the day is packed)"
    )
    print(
        f"  1 year of minute points -> 1,000    p50 {p50:.1f} ms, p95 {p95:.1f} ms over {args.runs} runs "
        f"({buckets} buckets from {source})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()
    with scratch_database("bench") as url:
        asyncio.run(main(options, url))
