"""Scheduled jobs run in exactly one process, and move to another when it stops."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from backend.db.engine import Database
from backend.history.maintenance import Retention, maintain
from backend.history.partitions import HISTORY, partitions
from backend.scheduler import Job, Scheduler


async def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


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
    await wait_until(lambda: runs.count("first") >= 3)
    assert "second" not in runs and not second.is_leader.is_set()
    await first.stop()
    await asyncio.wait_for(second.is_leader.wait(), 20)
    await wait_until(lambda: "second" in runs)
    await second.stop()


async def test_a_failing_job_does_not_stop_the_schedule(fresh_db: str) -> None:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    scheduler = Scheduler(fresh_db, [Job("flaky", flaky, seconds=0.1)], retry_seconds=0.2)
    scheduler.start()
    await wait_until(lambda: calls >= 3)
    await scheduler.stop()


async def test_maintenance_creates_ahead_and_applies_retention(fresh_db: str) -> None:
    from backend.history.partitions import ensure_partitions
    async with Database(fresh_db) as db:
        await ensure_partitions(db.pool, days_back=45, days_ahead=0)
        result = await maintain(db.pool, Retention(raw_days=30, rollup_days=365), days_ahead=5)
        async with db.pool.connection() as conn:
            days = await partitions(conn, HISTORY)
        now = datetime.now(timezone.utc)
        assert days[0][2].astimezone(timezone.utc) > now - timedelta(days=31)
        assert days[-1][1].date() == (now + timedelta(days=5)).date()
        assert len(result["dropped"]) >= 14
