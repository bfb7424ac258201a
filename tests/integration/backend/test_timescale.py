"""The TimescaleDB path (``OPENBLYNK_TIMESCALE``, :mod:`backend.history.timescale`) on a TimescaleDB.

Every test here gets an empty database on a server with the ``timescaledb`` extension
(:mod:`tests.support.timescaledb`): a new database on the server ``OPENBLYNK_TEST_TIMESCALE_URL``
names, or, when it is unset (``make test``), a new local PGlite server with TimescaleDB
2.23.0-dev. The production code runs unchanged on both; the tests hold one connection at a
time, since the local build serves one at a time.

The query test loads the same points into that database and into a plain PostgreSQL one (the
session's embedded server) and compares every answer of the public query functions: chart
buckets (``series``, which the console chart and the platform API call), raw pages, counts,
streamed raw points and the CSV export's rows, before and after TimescaleDB compresses (and
plain PostgreSQL packs) the older days. Points are loaded with ``INSERT`` (the local build
crashes on ``COPY FROM STDIN``); the history writer's own COPY into the hypertable has its test,
which only a real server runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from backend.db.engine import Database
from backend.db.migrate import migrate
from backend.device_api.export_params import data_formatter, data_queries, parse_params
from backend.errors import ConfigError
from backend.history import timescale
from backend.history.erase import erase_device_history
from backend.history.maintenance import Retention, maintain
from backend.history.packing import pack_closed_days
from backend.history.partitions import ensure_partitions
from backend.history.queries import PageCursor, count_raw, raw_page, series, stream_raw
from backend.history.writer import HistoryRow, HistoryWriter
from backend.templates.values import DatastreamSpec, DatastreamType
from tests.support.timescaledb import SERVER_ENV, TimescaleDatabase, insert_history, timescale_database

T = TypeVar("T")
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW - timedelta(days=5)
SPECS = [
    DatastreamSpec(0, "Temperature", DatastreamType.DOUBLE, save_raw=True),
    DatastreamSpec(1, "Log", DatastreamType.STRING, save_raw=True),
    DatastreamSpec(2, "Power", DatastreamType.INTEGER, save_raw=False),
]
EXPORTS = [
    [],
    [("granularityType", "MINUTE"), ("sourceType", "MAX")],
    [("granularityType", "HOURLY"), ("format", "ISO_SIMPLE"), ("tzName", "Europe/Berlin")],
    [("granularityType", "DAILY"), ("sourceType", "SUM"), ("tzName", "Asia/Kolkata")],
    [("granularityType", "DAILY"), ("sourceType", "COUNT"), ("format", "ISO_US")],
]
"""Query strings of ``data/get`` (period WEEK added): raw, minutes, hours, days from minutes
(a :30 zone) and days from hours."""


def points() -> list[HistoryRow]:
    """Device 1: a number a minute on V0 (with a second point on some minutes), a text an hour
    on V1, a number every 2 minutes on V2 kept only in the rollups; device 2: a number every 7
    minutes on V0. Numbers are quarters, so every sum is exact in any order."""
    minutes = 5 * 1440
    rows = [HistoryRow(1, 0, START + timedelta(minutes=i), (i % 97) * 0.25, None) for i in range(minutes)]
    rows += [HistoryRow(1, 0, START + timedelta(minutes=i), 50.5, None) for i in range(0, minutes, 499)]
    rows += [HistoryRow(1, 1, START + timedelta(hours=i), None, f"line {i}") for i in range(5 * 24)]
    rows += [
        HistoryRow(1, 2, START + timedelta(minutes=i), float(i % 13), None, raw=False) for i in range(0, minutes, 2)
    ]
    rows += [HistoryRow(2, 0, START + timedelta(minutes=i), -(i % 11) * 0.5, None) for i in range(0, minutes, 7)]
    return rows


async def answers(pool: AsyncConnectionPool) -> dict[str, Any]:
    """Every history query's answer over the points of :func:`points`."""
    out: dict[str, Any] = {}
    for name, (pin, start, end, n, save_raw) in {
        "5 days in 100 buckets (minutes)": (0, START, NOW, 100, True),
        "5 days in 10 buckets (hours)": (0, START, NOW, 10, True),
        "an hour in 3600 buckets (raw)": (0, START, START + timedelta(hours=1), 3600, True),
        "console chart without raw data": (2, START, START + timedelta(hours=1), 3600, False),
        "rollup-only pin, 4 days": (2, START + timedelta(days=1), NOW, 96, False),
        "device 2, a day": (0, START + timedelta(days=2), START + timedelta(days=3), 24, True),
    }.items():
        device = 2 if name.startswith("device 2") else 1
        found = await series(pool, device, pin, start, end, n, save_raw=save_raw)
        out[f"series: {name}"] = (found.source, found.buckets)
    for pin in (0, 1):
        pages, cursor = [], None
        while True:
            page, cursor = await raw_page(pool, 1, pin, START, NOW, limit=997, cursor=cursor)
            pages.append(page)
            if cursor is None:
                break
        out[f"raw pages of V{pin}"] = pages
        out[f"count of V{pin}"] = await count_raw(pool, 1, pin, START, NOW)
        streamed = [p async for p in stream_raw(pool, 1, pin, START, NOW, chunk=1000)]
        out[f"stream of V{pin}"] = ties_sorted(streamed, lambda p: p.ts)
    out["a page after a cursor on a shared timestamp"] = await raw_page(
        pool, 1, 0, START, NOW, limit=3, cursor=PageCursor(START + timedelta(minutes=499), 1)
    )
    for query in EXPORTS:
        out[f"export {query}"] = ties_sorted(await export_rows(pool, [("period", "WEEK"), *query]), lambda r: r[:2])
    return out


def ties_sorted(rows: list[T], key: Callable[[T], object]) -> list[T]:
    """``rows`` with each run of rows of the same ``key`` (points sharing a timestamp) sorted:
    ``stream_raw`` and the export order by time only, so such points come in any order (even
    on plain PostgreSQL, packed or not); the order of everything else is kept as it came."""
    return [row for _, run in groupby(rows, key) for row in sorted(run, key=repr)]


async def export_rows(pool: AsyncConnectionPool, query: list[tuple[str, str]]) -> list[list[str]]:
    """The CSV rows of ``data/get`` for device 1, read as the export reads them (server-side
    cursors in one transaction)."""
    params = parse_params(query, SPECS)
    fmt = data_formatter(params)
    rows: list[list[str]] = []
    async with pool.connection() as conn, conn.transaction():
        for n, (sql, args) in enumerate(data_queries(params, 1, NOW - params.period, NOW)):
            async with conn.cursor(name=f"export_{n}") as cur:
                await cur.execute(sql, args)
                rows += [fmt(row) for row in await cur.fetchall()]
    return rows


async def plain_answers(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The answers on plain PostgreSQL (native partitions), before and after packing."""
    async with Database(url, pool_size=1) as db:
        await ensure_partitions(db.pool, days_back=6, days_ahead=1)
        await insert_history(db.pool, points())
        before = await answers(db.pool)
        assert len(await pack_closed_days(db.pool)) >= 3
        return before, await answers(db.pool)


def run_policy(url: str, proc_name: str) -> None:
    """Run the history's TimescaleDB policy job now (the local build has no background workers;
    a real server would run it on its schedule)."""
    with psycopg.connect(url, autocommit=True) as conn:
        job = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s AND hypertable_name = 'history'",
            (proc_name,),
        ).fetchone()
        assert job is not None, f"no {proc_name} job on history"
        conn.execute("CALL run_job(%s)", job)


def compressed_chunks(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'history' AND is_compressed"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def timescale_db() -> Iterator[TimescaleDatabase]:
    """An empty database with TimescaleDB available (real server or local build)."""
    with timescale_database() as db:
        yield db


@pytest.fixture
def hypertable_db(timescale_db: TimescaleDatabase) -> str:
    """The URL of a migrated database whose history is a hypertable."""
    migrate(timescale_db.url)
    assert timescale.adopt(timescale_db.url, "require")
    return timescale_db.url


async def test_migrations_on_an_empty_database_make_history_a_hypertable_keeping_its_rows(
    timescale_db: TimescaleDatabase,
) -> None:
    url = timescale_db.url
    migrate(url)
    earlier = [HistoryRow(1, 0, START + timedelta(hours=i), float(i), None) for i in range(100)]
    async with Database(url, pool_size=1) as db:
        await ensure_partitions(db.pool, days_back=6, days_ahead=1)
        await insert_history(db.pool, earlier)

    assert timescale.adopt(url, "require")
    assert timescale.adopt(url, "auto")  # again: nothing to do

    with psycopg.connect(url) as conn:
        kinds: dict[str, str] = dict(
            conn.execute(
                "SELECT relname, relkind FROM pg_class WHERE relname IN "
                "('history', 'history_partitioned', 'history_minute', 'history_hour')"
            ).fetchall()
        )
        assert kinds == {"history": "r", "history_minute": "p", "history_hour": "p"}
        chunk = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_name = 'history' AND column_name = 'ts'"
        ).fetchone()
        assert chunk == (timedelta(days=1),)
        settings = conn.execute(
            "SELECT attname, segmentby_column_index, orderby_column_index "
            "FROM timescaledb_information.compression_settings "
            "WHERE hypertable_name = 'history' ORDER BY attname"
        ).fetchall()
        assert settings == [("device_id", 1, None), ("pin", 2, None), ("ts", None, 1)]
        policy = conn.execute(
            "SELECT config->>'compress_after' FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_compression' AND hypertable_name = 'history'"
        ).fetchall()
        assert policy == [(timescale.COMPRESS_AFTER,)]
    async with Database(url, pool_size=1) as db:
        async with db.pool.connection() as conn:
            assert await timescale.is_hypertable(conn)
        assert await count_raw(db.pool, 1, 0, START, NOW) == 100
        created = await ensure_partitions(db.pool, days_back=6, days_ahead=62)
        assert created and not [name for name in created if name.startswith("history_2")]  # rollups only


async def test_every_history_query_answers_as_on_plain_postgresql(hypertable_db: str, fresh_db: str) -> None:
    expected, packed = await plain_answers(fresh_db)
    assert [name for name, answer in expected.items() if not (answer[1] if name.startswith("series") else answer)] == []
    assert packed == expected  # packed days answer the same
    async with Database(hypertable_db, pool_size=1) as db:
        await insert_history(db.pool, points())
        assert await answers(db.pool) == expected

    run_policy(hypertable_db, "policy_compression")
    assert compressed_chunks(hypertable_db) >= 3  # the days older than COMPRESS_AFTER
    async with Database(hypertable_db, pool_size=1) as db:
        assert await answers(db.pool) == expected


async def test_maintenance_sets_the_retention_policy_which_drops_old_chunks(hypertable_db: str) -> None:
    async with Database(hypertable_db, pool_size=1) as db:
        await insert_history(db.pool, [HistoryRow(1, 0, NOW - timedelta(hours=i), 1.0, None) for i in range(60 * 24)])
        done = await maintain(db.pool, Retention(raw_days=45, rollup_days=365))
        assert done["packed"] == [] and not [name for name in done["dropped"] if name.startswith("history_2")]
        kept = await count_raw(db.pool, 1, 0, NOW - timedelta(days=45), NOW)
        async with db.pool.connection() as conn:
            assert not await timescale.set_retention(conn, 45)  # already so
    with psycopg.connect(hypertable_db) as conn:
        policy = conn.execute(
            "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_name = 'history'"
        ).fetchall()
    assert policy == [("45 days",)]

    run_policy(hypertable_db, "policy_retention")
    async with Database(hypertable_db, pool_size=1) as db:
        assert await count_raw(db.pool, 1, 0, NOW - timedelta(days=60), NOW - timedelta(days=46)) == 0
        assert await count_raw(db.pool, 1, 0, NOW - timedelta(days=45), NOW) == kept
        await maintain(db.pool, Retention(raw_days=30, rollup_days=365))
        async with db.pool.connection() as conn:
            policy = await (
                await conn.execute(
                    "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
                    "WHERE proc_name = 'policy_retention' AND hypertable_name = 'history'"
                )
            ).fetchall()
    assert policy == [("30 days",)]


async def test_erasing_a_device_history_removes_its_raw_compressed_and_rolled_up_points(hypertable_db: str) -> None:
    async with Database(hypertable_db, pool_size=1) as db:
        await insert_history(db.pool, points())
        other = await answers_of_device_2(db.pool)
    run_policy(hypertable_db, "policy_compression")
    assert compressed_chunks(hypertable_db) >= 3

    db = Database(hypertable_db, pool_size=1)  # its session only: one connection at a time
    try:
        async with db.session() as session:
            assert await erase_device_history(session, 1) > 5 * 1440
    finally:
        await db.close()

    async with Database(hypertable_db, pool_size=1) as db:
        for pin in (0, 1):
            assert await count_raw(db.pool, 1, pin, START, NOW) == 0
        for pin, save_raw in ((0, True), (2, False)):
            assert (await series(db.pool, 1, pin, START, NOW, 100, save_raw=save_raw)).buckets == []
        assert await answers_of_device_2(db.pool) == other


async def answers_of_device_2(pool: AsyncConnectionPool) -> tuple[object, ...]:
    page, _ = await raw_page(pool, 2, 0, START, NOW, limit=10_000)
    return page, (await series(pool, 2, 0, START, NOW, 100)).buckets


@pytest.mark.skipif(
    not os.environ.get(SERVER_ENV),
    reason=(
        "the local PGlite TimescaleDB build crashes on COPY FROM STDIN, so the history writer's binary COPY into "
        "the hypertable (raw rows and rollups) runs only against a real TimescaleDB server: set "
        "OPENBLYNK_TEST_TIMESCALE_URL"
    ),
)
async def test_the_history_writer_copies_into_the_hypertable(timescale_db: TimescaleDatabase, fresh_db: str) -> None:
    assert not timescale_db.local_build
    migrate(timescale_db.url)
    assert timescale.adopt(timescale_db.url, "require")
    results = []
    for url in (fresh_db, timescale_db.url):
        async with Database(url, pool_size=1) as db:
            await ensure_partitions(db.pool, days_back=6, days_ahead=1)
            rows = points()
            for i in range(0, len(rows), 3000):  # batches that share buckets, merged into the rollups
                await HistoryWriter(db.pool).write(rows[i : i + 3000])
            results.append(await answers(db.pool))
    assert results[1] == results[0]


def test_without_timescaledb_auto_keeps_native_partitions_and_require_refuses(fresh_db: str) -> None:
    """On plain PostgreSQL (this machine's embedded server) ``auto`` changes nothing,
    ``off`` never looks, and ``require`` stops start-up with what to do."""
    assert timescale.adopt(fresh_db, "off") is False
    assert timescale.adopt(fresh_db, "auto") is False
    with psycopg.connect(fresh_db) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'history'").fetchone()
    assert kind == ("p",)  # still natively partitioned
    with pytest.raises(ConfigError, match="install TimescaleDB or set OPENBLYNK_TIMESCALE=auto"):
        timescale.adopt(fresh_db, "require")
