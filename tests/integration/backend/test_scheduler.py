"""Scheduled jobs run in exactly one process, and move to another when it stops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from backend.db.engine import Database
from backend.history.maintenance import Retention, maintain
from backend.history.partitions import HISTORY, partitions
from backend.scheduler import LEADER_LOCK, Job, Scheduler
from tests.support.net import eventually


async def test_only_the_leader_runs_jobs_and_leadership_moves(fresh_db: str) -> None:
    runs: list[str] = []

    def job(name: str) -> Job:
        async def record() -> None:
            runs.append(name)

        return Job("tick", record, seconds=0.2)

    first = Scheduler(fresh_db, [job("first")], retry_seconds=0.2)
    second = Scheduler(fresh_db, [job("second")], retry_seconds=0.2)
    first.start()
    await first.is_leader.wait()
    second.start()
    await eventually(lambda: runs.count("first") >= 3, 20)
    assert "second" not in runs and not second.is_leader.is_set()
    await first.stop()
    await asyncio.wait_for(second.is_leader.wait(), 20)
    await eventually(lambda: "second" in runs, 20)
    await second.stop()


async def test_a_failing_job_does_not_stop_the_schedule(fresh_db: str) -> None:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    scheduler = Scheduler(fresh_db, [Job("flaky", flaky, seconds=0.1)], retry_seconds=0.2)
    scheduler.start()
    await eventually(lambda: calls >= 3, 20)
    await scheduler.stop()


async def test_maintenance_creates_ahead_and_applies_retention(fresh_db: str) -> None:
    from backend.history.partitions import ensure_partitions

    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=45, days_ahead=0)
        result = await maintain(db.pool, Retention(raw_days=30, rollup_days=365), days_ahead=5)
        async with db.pool.connection() as conn:
            days = await partitions(conn, HISTORY)
        now = datetime.now(UTC)
        assert days[0][2].astimezone(UTC) > now - timedelta(days=31)
        assert days[-1][1].date() == (now + timedelta(days=5)).date()
        assert len(result["dropped"]) >= 14


async def test_retention_per_template(fresh_db: str) -> None:
    """The longest retention decides which partitions go; shorter ones trim their own rows."""
    from backend.history.writer import HistoryRow, HistoryWriter
    from tests.support.provision import provision_async, thermostat_doc

    short, long_ = thermostat_doc("short"), thermostat_doc("long")
    short["templates"][0]["raw_retention_days"] = 5
    long_["templates"][0]["raw_retention_days"] = 60
    a = (await provision_async(fresh_db, short)).devices[0].id
    b = (await provision_async(fresh_db, long_)).devices[0].id
    c = (await provision_async(fresh_db, thermostat_doc("default"))).devices[0].id  # global: 30 days
    async with Database(fresh_db) as db:
        from backend.history.partitions import ensure_partitions

        await ensure_partitions(db.pool, days_back=90, days_ahead=0)
        now = datetime.now(UTC)
        await HistoryWriter(db.pool).write(
            [
                HistoryRow(dev, 0, now - timedelta(days=age), float(age), None)
                for dev in (a, b, c)
                for age in (1, 10, 45, 80)
            ]
        )
        await maintain(db.pool, Retention(raw_days=30, rollup_days=365), days_ahead=1)
        async with db.pool.connection() as conn:  # raw or packed (maintain packs finished days)
            rows = await (
                await conn.execute(
                    "SELECT d, value FROM unnest(%s::bigint[]) d, history_points(d, 0, now() - interval '1 year', now()) "
                    "ORDER BY 1, 2",
                    ([a, b, c],),
                )
            ).fetchall()
    assert rows == [(a, 1.0), (b, 1.0), (b, 10.0), (b, 45.0), (c, 1.0), (c, 10.0)]


async def test_a_stored_job_runs_in_the_leader_and_survives_it(fresh_db: str) -> None:
    """A stored job put by one leader runs in the next one: missed while no process led, it
    runs once when the next leader starts, inside the grace time."""
    from apscheduler.triggers.date import DateTrigger

    runs: list[tuple[str, str]] = []

    def scheduler(name: str, grace: float) -> Scheduler:
        made = Scheduler(fresh_db, [], retry_seconds=0.2, misfire_grace_seconds=grace)

        async def handler(key: str, at: datetime) -> None:
            runs.append((name, key))

        made.handle("t", handler)
        return made

    first = scheduler("first", 300)
    first.start()
    await first.is_leader.wait()
    soon = datetime.now(UTC) + timedelta(seconds=0.5)
    assert first.put("t", "now", DateTrigger(run_date=soon, timezone=UTC))
    await eventually(lambda: runs == [("first", "now")], 20)
    assert first.put("t", "missed", DateTrigger(run_date=datetime.now(UTC) + timedelta(seconds=1), timezone=UTC))
    assert first.put("t", "also-missed", DateTrigger(run_date=datetime.now(UTC) + timedelta(seconds=1), timezone=UTC))
    await first.stop()
    await asyncio.sleep(2)  # both fall due while no process leads
    second = scheduler("second", 300)
    second.start()
    await second.is_leader.wait()
    await eventually(lambda: ("second", "missed") in runs, 20)
    assert runs.count(("second", "missed")) == 1 and ("second", "also-missed") in runs
    assert second.stored("t") == {}
    await second.stop()


async def test_a_missed_run_beyond_the_grace_time_is_skipped(fresh_db: str) -> None:
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    runs: list[str] = []

    async def handler(key: str, at: datetime) -> None:
        runs.append(key)

    first = Scheduler(fresh_db, [], retry_seconds=0.2, misfire_grace_seconds=1)
    first.handle("t", handler)
    first.start()
    await first.is_leader.wait()
    first.put("t", "late", DateTrigger(run_date=datetime.now(UTC) + timedelta(seconds=0.3), timezone=UTC))
    every = IntervalTrigger(seconds=1, start_date=datetime.now(UTC).replace(microsecond=0), timezone=UTC)
    first.put("t", "marker", every)
    await first.stop()
    await asyncio.sleep(2.5)  # "late" is due, then more than the grace time late
    runs.clear()
    second = Scheduler(fresh_db, [], retry_seconds=0.2, misfire_grace_seconds=1)
    second.handle("t", handler)
    second.start()
    await eventually(lambda: "marker" in runs, 20)  # the interval job goes on (in the same pass: "late" seen)
    assert "late" not in runs and "late" not in second.stored("t")
    await second.stop()


async def test_the_leader_stops_at_once_when_its_lock_connection_breaks(fresh_db: str) -> None:
    """Its lock's backend terminated, the leader stops its scheduler without waiting for its
    next check (``retry_seconds`` is an hour here), and another process takes over."""
    import psycopg

    first = Scheduler(fresh_db, [], retry_seconds=3600)
    first.start()
    await first.is_leader.wait()
    async with await psycopg.AsyncConnection.connect(fresh_db, autocommit=True) as conn:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
            (LEADER_LOCK,),
        )
    await eventually(lambda: not first.is_leader.is_set() and not first.leading, 20)
    second = Scheduler(fresh_db, [], retry_seconds=0.2)
    second.start()
    await asyncio.wait_for(second.is_leader.wait(), 20)
    await first.stop()
    await second.stop()


async def test_a_stored_job_gets_its_slot_and_its_firing_is_kept_until_the_handler_returned(fresh_db: str) -> None:
    """The handler is told the run time the job was scheduled for, and the firing row the leader
    committed before moving the job on stays until the handler has returned."""
    import psycopg
    from apscheduler.triggers.date import DateTrigger

    seen: list[tuple[str, datetime, int]] = []
    release = asyncio.Event()

    async def handler(key: str, at: datetime) -> None:
        async with await psycopg.AsyncConnection.connect(fresh_db) as conn:
            rows = await (await conn.execute("SELECT count(*) FROM scheduler_firing")).fetchone()
        seen.append((key, at, rows[0] if rows else -1))
        await release.wait()

    scheduler = Scheduler(fresh_db, [], retry_seconds=0.2)
    scheduler.handle("t", handler)
    scheduler.start()
    await scheduler.is_leader.wait()
    slot = (datetime.now(UTC) + timedelta(seconds=0.5)).replace(microsecond=250_000)
    assert scheduler.put("t", "k", DateTrigger(run_date=slot, timezone=UTC))
    await eventually(lambda: len(seen) == 1, 20)
    assert seen == [("k", slot, 1)]
    release.set()
    async with await psycopg.AsyncConnection.connect(fresh_db) as conn:

        async def left() -> int:
            row = await (await conn.execute("SELECT count(*) FROM scheduler_firing")).fetchone()
            await conn.commit()
            return row[0] if row else -1

        for _ in range(200):
            if await left() == 0:
                break
            await asyncio.sleep(0.05)
        assert await left() == 0
    await scheduler.stop()


async def test_the_next_leader_takes_up_the_firings_a_dead_leader_left_within_their_grace(fresh_db: str) -> None:
    """Rows of ``scheduler_firing`` are what a leader killed between recording a firing and its
    handler's return leaves: the next leader calls the handler for the same slot (however late
    for a job without grace, within the grace for the others) and forgets the rest."""
    import psycopg

    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO scheduler_firing (job_id, fire_at, grace_s) VALUES "
            "('t:recent', %(recent)s, 300), ('t:late', %(old)s, 300), ('t:always', %(old)s, NULL)",
            {"recent": now - timedelta(seconds=5), "old": now - timedelta(hours=2)},
        )
    seen: list[tuple[str, datetime]] = []

    async def handler(key: str, at: datetime) -> None:
        seen.append((key, at))

    scheduler = Scheduler(fresh_db, [], retry_seconds=0.2)
    scheduler.handle("t", handler)
    scheduler.start()
    await scheduler.is_leader.wait()
    assert sorted(seen) == [("always", now - timedelta(hours=2)), ("recent", now - timedelta(seconds=5))]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM scheduler_firing").fetchone() == (0,)
    await scheduler.stop()


async def test_a_recurring_job_is_told_each_slot_as_its_trigger_computes_it(fresh_db: str) -> None:
    """Slots of a recurring job are its trigger's run times (whole seconds from its start here),
    not the moment the handler runs: a leader firing the same run time again gets the same slot."""
    from apscheduler.triggers.interval import IntervalTrigger

    slots: list[datetime] = []

    async def handler(key: str, at: datetime) -> None:
        slots.append(at)

    scheduler = Scheduler(fresh_db, [], retry_seconds=0.2)
    scheduler.handle("t", handler)
    scheduler.start()
    await scheduler.is_leader.wait()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    assert scheduler.put("t", "every", IntervalTrigger(seconds=1, start_date=start, timezone=UTC))
    await eventually(lambda: len(slots) >= 2, 20)
    await scheduler.stop()
    assert slots[:2] == [start + timedelta(seconds=n) for n in range(2)]
