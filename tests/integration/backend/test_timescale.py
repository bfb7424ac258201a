"""The TimescaleDB path, against a real TimescaleDB server.

Runs only when ``OPENBLYNK_TEST_TIMESCALE_URL`` names a PostgreSQL server with the
``timescaledb`` extension available (for example ``postgresql://postgres:pw@host/postgres``
of the ``timescale/timescaledb`` image); the test creates and drops its own database there.
No TimescaleDB package exists for this project's development machine, so it is skipped
there, with this reason printed in the summary.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import conninfo

from backend.db.engine import Database
from backend.db.migrate import migrate
from backend.errors import ConfigError
from backend.history import timescale
from backend.history.maintenance import Retention, maintain
from backend.history.packing import pack_closed_days
from backend.history.partitions import ensure_partitions
from backend.history.queries import raw_page, series, stream_raw
from backend.history.writer import HistoryRow, HistoryWriter

SERVER = os.environ.get("OPENBLYNK_TEST_TIMESCALE_URL")
needs_timescale = pytest.mark.skipif(
    not SERVER, reason="TimescaleDB path: set OPENBLYNK_TEST_TIMESCALE_URL to a TimescaleDB server to run it "
                       "(no TimescaleDB package exists for this machine)")


@pytest.fixture
def timescale_db() -> Iterator[str]:
    """A fresh database on the TimescaleDB server, dropped afterwards."""
    assert SERVER is not None
    name = f"openblynk_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    try:
        yield conninfo.make_conninfo(SERVER, dbname=name)
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


@needs_timescale
async def test_history_becomes_a_compressed_hypertable_and_every_query_still_works(timescale_db: str) -> None:
    migrate(timescale_db)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(days=5)
    rows = [HistoryRow(1, 0, start + timedelta(minutes=i), float(i % 100), None) for i in range(5 * 1440)]
    rows += [HistoryRow(1, 1, start + timedelta(hours=i), None, f"text {i}") for i in range(5 * 24)]
    async with Database(timescale_db) as db:  # rows written before the conversion are kept
        await ensure_partitions(db.pool, days_back=6, days_ahead=1)
        await HistoryWriter(db.pool).write(rows[:100])

    assert timescale.adopt(timescale_db, "require")
    assert timescale.adopt(timescale_db, "require")  # idempotent

    async with Database(timescale_db) as db:
        async with db.pool.connection() as conn:
            assert await timescale.is_hypertable(conn)
            jobs = await (await conn.execute(
                "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name = 'history'")).fetchall()
            assert ("policy_compression",) in jobs
        assert await ensure_partitions(db.pool, days_back=6, days_ahead=2)  # rollups only; history has chunks
        await HistoryWriter(db.pool).write(rows[100:])

        async def answers() -> tuple[object, ...]:
            page, _ = await raw_page(db.pool, 1, 0, start, now, limit=10_000)
            texts = [p.text async for p in stream_raw(db.pool, 1, 1, start, now)]
            buckets = (await series(db.pool, 1, 0, start, now, 100)).buckets
            raw_buckets = (await series(db.pool, 1, 0, start, start + timedelta(hours=1), 3600)).buckets
            return [(p.ts, p.value) for p in page], texts, buckets, raw_buckets

        before = await answers()
        assert len(before[0]) == 5 * 1440 and len(before[1]) == 5 * 24
        async with db.pool.connection() as conn:
            compressed = await (await conn.execute(
                "SELECT count(compress_chunk(c, if_not_compressed => true)) "
                "FROM show_chunks('history', older_than => INTERVAL '2 days') c")).fetchone()
        assert compressed is not None and compressed[0] >= 2
        assert await answers() == before

        assert await pack_closed_days(db.pool) == []  # TimescaleDB compresses; nothing is packed
        await maintain(db.pool, Retention(raw_days=45, rollup_days=365))
        async with db.pool.connection() as conn:
            policy = await (await conn.execute(
                "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_retention' AND hypertable_name = 'history'")).fetchone()
        assert policy == ("45 days",)
        assert await answers() == before


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
