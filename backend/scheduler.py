"""Periodic background jobs, run by exactly one process of a deployment at a time.

The app hands a :class:`Scheduler` its jobs (each a :class:`Job`; which jobs, and how often, is
decided where the app is assembled, not here). Every app process starts one; only the process
holding a PostgreSQL advisory lock (:data:`LEADER_LOCK`) runs the jobs, on an in-memory
APScheduler. The lock lives on a dedicated connection that the leader checks every
``retry_seconds``: if that process dies or loses the database, the lock is released and another
process takes over within about ``retry_seconds`` (the others try for it that often).

Each job runs once as soon as a process becomes leader, then every ``seconds``; a run never
overlaps the previous one of the same job and missed runs are coalesced into one. A job that
raises is logged and keeps its schedule. APScheduler's job stores must never be shared between
schedulers (they would fire a job twice); here each leader keeps its jobs in memory and
registers them when it becomes leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from backend.tasks import cancel

log = logging.getLogger(__name__)
LEADER_LOCK = 0x0B1E_0002  # advisory lock id (0x0B1E_0001 guards migrations)


@dataclass(frozen=True)
class Job:
    """A job run every ``seconds`` (and once as soon as this process becomes leader)."""

    id: str
    func: Callable[[], Awaitable[object]]
    seconds: float


class _JobScheduler(Protocol):
    """What is used of APScheduler 3's ``AsyncIOScheduler`` (the library has no annotations)."""

    def add_job(
        self,
        func: Callable[[], Awaitable[None]],
        trigger: str,
        *,
        seconds: float,
        id: str,  # noqa: A002
        replace_existing: bool,
        coalesce: bool,
        max_instances: int,
        next_run_time: datetime,
    ) -> object: ...

    def start(self) -> None: ...

    def shutdown(self, wait: bool = True) -> None: ...


class Scheduler:
    """Leader election by advisory lock, then APScheduler in this process."""

    def __init__(self, url: str, jobs: list[Job], retry_seconds: float = 15.0) -> None:
        self.url = url
        self.jobs = jobs
        self.retry_seconds = retry_seconds
        self.is_leader = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start competing for leadership in the background."""
        self._task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        """Stop jobs and give up leadership."""
        task, self._task = self._task, None
        await cancel(task)

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,))).fetchone()
                    if row and row[0]:
                        await self._lead(conn)
            except (psycopg.OperationalError, OSError) as exc:
                log.warning("scheduler lost the database (%s)", exc)
            self.is_leader.clear()
            await asyncio.sleep(self.retry_seconds)

    async def _lead(self, conn: psycopg.AsyncConnection) -> None:
        """Run the jobs while the lock's connection stays healthy."""
        scheduler: _JobScheduler = AsyncIOScheduler(timezone="UTC")
        for job in self.jobs:
            scheduler.add_job(
                _guarded(job),
                "interval",
                seconds=job.seconds,
                id=job.id,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                next_run_time=_now(),
            )
        scheduler.start()
        self.is_leader.set()
        log.info("this process runs the scheduled jobs (%s)", ", ".join(j.id for j in self.jobs))
        try:
            while True:  # a broken connection means the lock is gone: stop leading
                await asyncio.sleep(self.retry_seconds)
                await conn.execute("SELECT 1")
        finally:
            scheduler.shutdown(wait=False)


def _guarded(job: Job) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job.func()
        except Exception:
            log.exception("scheduled job %s failed", job.id)

    return run


def _now() -> datetime:
    return datetime.now(UTC)
