"""Background jobs, run by exactly one process of a deployment at a time.

Two kinds of jobs:

- **housekeeping** (:class:`Job`): given at start, run every ``seconds`` and once as soon as a
  process becomes leader; kept in memory (every leader registers them again);
- **stored jobs**: an APScheduler trigger under ``(kind, key)`` (job id ``<kind>:<key>``),
  kept in PostgreSQL (table ``apscheduler_jobs``, APScheduler's ``SQLAlchemyJobStore`` over
  psycopg 3), so their next run time survives restarts. Whoever owns a kind says what runs with
  :meth:`Scheduler.handle` (``handler(key)``) and keeps the jobs with :meth:`Scheduler.put`,
  :meth:`Scheduler.remove` and :meth:`Scheduler.sync` (all only in the leader: they return
  False elsewhere); :meth:`Scheduler.on_lead` is told each time this process becomes leader.

Leader election: every app process starts one :class:`Scheduler`; only the process holding a
PostgreSQL advisory lock (:data:`LEADER_LOCK`) runs an APScheduler, so the job store is never
shared by two running schedulers (APScheduler 3 would fire a job once per scheduler). The lock
lives on a dedicated connection the leader keeps waiting on: when that connection breaks (the
database restarted, the network failed, the backend was terminated) the leader stops its
scheduler at once; it also checks the connection every ``retry_seconds``. The others try for
the lock that often, so a new leader takes over within about ``retry_seconds``.

Missed runs: a stored job whose run time passed while no leader lived runs once when the next
leader starts, if it is late by at most ``misfire_grace_seconds`` (runs missed beyond that are
skipped; several missed runs of one job are coalesced into one). :meth:`Scheduler.put` with
``grace=None`` runs a job however late it is (an automation's wait that must end). A run never
overlaps the previous run of the same job, and a job that raises is logged and keeps its
schedule.

Firings survive the leader's death: the handler is called as ``handler(key, at)`` with the
run time it was scheduled for (its *slot*). Before APScheduler moves a stored job to its next run
time, the leader commits a row of ``scheduler_firing`` (job id, slot) and deletes it once the
handler returned. A leader killed before the move leaves the job at the same run time and a
leader killed after it leaves the row: either way the next leader calls the handler again for
the same slot (the row's slot is given again within its grace). So a handler is called at least
once per slot, and twice only for a slot whose earlier call was cut short: handlers that must run
once claim the slot with a unique key in the transaction that records their work
(``backend.automations.engine`` does).

Tests only: ``crash_at`` names a point (:data:`CRASH_POINTS`) where this process kills itself
with SIGKILL the first time it gets there, so a test can kill a leader at an exact instant.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from backend.metrics import JOB_RUNS
from backend.tasks import cancel

log = logging.getLogger(__name__)
LEADER_LOCK = 0x0B1E_0002  # advisory lock id (0x0B1E_0001 guards migrations)
STORE = "stored"
"""The job store alias of the stored jobs (the housekeeping jobs use ``default``, in memory)."""
TABLE = "apscheduler_jobs"
CRASH_POINTS = frozenset({"fire-recorded", "fire-claimed", "step-done"})
"""Where a test may have this process kill itself (``crash_at``): after a firing is recorded
(before its job moves on), after an automation run claimed its slot, after a run's first step
was committed."""

Handler = Callable[[str, datetime], Awaitable[object]]
"""A stored job's handler: ``handler(key, at)``, ``at`` the run time it was scheduled for."""
_RECORD_SQL = text(
    "INSERT INTO scheduler_firing (job_id, fire_at, grace_s) VALUES (:job, :at, :grace) ON CONFLICT DO NOTHING"
)
_DONE_SQL = text("DELETE FROM scheduler_firing WHERE job_id = :job AND fire_at = :at")
_KEYS_SQL = text(f"SELECT id FROM {TABLE} WHERE id LIKE :prefix")
_LEFT_SQL = text("SELECT job_id, fire_at, grace_s FROM scheduler_firing ORDER BY fire_at")


@dataclass(frozen=True)
class Job:
    """A job run every ``seconds`` (and once as soon as this process becomes leader)."""

    id: str
    func: Callable[[], Awaitable[object]]
    seconds: float


class _StoredJob(Protocol):
    id: str
    trigger: object


class _JobScheduler(Protocol):
    """What is used of APScheduler 3's ``AsyncIOScheduler`` (the library has no annotations)."""

    def add_job(self, func: Callable[..., Awaitable[None]], trigger: Any = None, **options: Any) -> object: ...

    def remove_job(self, job_id: str, jobstore: str | None = None) -> None: ...

    def get_jobs(self, jobstore: str | None = None) -> list[_StoredJob]: ...

    def get_job(self, job_id: str, jobstore: str | None = None) -> _StoredJob | None: ...

    def start(self) -> None: ...

    def shutdown(self, wait: bool = True) -> None: ...


_leader: Scheduler | None = None
"""The scheduler leading in this process: stored jobs come back from PostgreSQL as a reference
to :func:`run_stored` and their ``(kind, key)``, so the function finds its handlers here. At most
one scheduler of a process leads at a time (they compete for the same lock)."""


async def run_stored(kind: str, key: str, at: datetime | None = None) -> None:
    """Run a stored job: the handler of its kind for the slot ``at`` (what APScheduler's stored
    jobs call; the leader's executor passes ``at``)."""
    leader = _leader
    handler = leader._handlers.get(kind) if leader is not None else None
    if handler is None:
        log.error("no handler for stored job %s:%s", kind, key)
        return
    try:
        await handler(key, at or _now())
    except Exception:
        JOB_RUNS.labels(kind, "failed").inc()  # by kind: keys (automations...) are unbounded
        log.exception("stored job %s:%s failed", kind, key)
    else:
        JOB_RUNS.labels(kind, "ok").inc()


class _FiringExecutor(AsyncIOExecutor):  # type: ignore[misc]  # APScheduler 3 has no annotations
    """APScheduler's asyncio executor, recording each stored job's slot before it runs (see the
    module's docstring); in-memory jobs run as APScheduler runs them."""

    def __init__(self, owner: Scheduler, engine: Engine) -> None:
        super().__init__()
        self.owner = owner
        self.engine = engine

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        if job._jobstore_alias != STORE:
            super()._do_submit_job(job, run_times)
            return
        grace = job.misfire_grace_time
        due = [t for t in run_times if grace is None or (_now() - t).total_seconds() <= grace]
        for at in run_times:
            if at not in due:
                log.warning("stored job %s missed its run at %s (later than its grace time)", job.id, at)
        with self.engine.begin() as conn:  # committed before APScheduler moves the job on
            for at in due:
                conn.execute(_RECORD_SQL, {"job": job.id, "at": at, "grace": grace})
        self.owner.crash_point("fire-recorded")
        task = self._eventloop.create_task(self.owner._fire_slots(job.id, due))

        def done(task: asyncio.Task[None]) -> None:
            self._pending_futures.discard(task)
            if task.cancelled() or task.exception() is None:
                self._run_job_success(job.id, [])
            else:
                exc = task.exception()
                self._run_job_error(job.id, exc, exc.__traceback__ if exc else None)

        task.add_done_callback(done)
        self._pending_futures.add(task)


class Scheduler:
    """Leader election by advisory lock, then APScheduler in this process."""

    def __init__(
        self,
        url: str,
        jobs: list[Job],
        retry_seconds: float = 15.0,
        misfire_grace_seconds: float = 300.0,
        crash_at: str = "",
    ) -> None:
        if crash_at and crash_at not in CRASH_POINTS:
            raise ValueError(f"unknown crash point {crash_at!r}")
        self.url = url
        self.crash_at = crash_at
        """Tests only: the point where this process kills itself once (empty: never)."""
        self.jobs = jobs
        self.retry_seconds = retry_seconds
        self.misfire_grace_seconds = max(1, math.ceil(misfire_grace_seconds))
        """Whole seconds (APScheduler takes a positive integer)."""
        self.is_leader = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handlers: dict[str, Handler] = {}
        self._on_lead: list[Callable[[], Awaitable[None]]] = []
        self._aps: _JobScheduler | None = None
        self._engine: Engine | None = None

    # -- stored jobs ------------------------------------------------------------------------------
    def handle(self, kind: str, handler: Handler) -> None:
        """Run ``handler(key)`` for the stored jobs of ``kind`` (register before :meth:`start`)."""
        self._handlers[kind] = handler

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call ``callback`` each time this process becomes leader, once its scheduler runs (to
        bring the stored jobs up to date with what changed while no one led)."""
        self._on_lead.append(callback)

    @property
    def leading(self) -> bool:
        """Whether stored jobs can be changed from this process now."""
        return self._aps is not None

    def put(self, kind: str, key: str, trigger: object, *, grace: float | None | bool = True) -> bool:
        """Store (or replace) job ``<kind>:<key>``; one whose trigger is unchanged (same ``repr``)
        keeps its next run time. ``grace``: True for the scheduler's misfire grace time, None
        to run however late, or seconds. False if this process does not lead."""
        aps = self._aps
        if aps is None:
            return False
        job_id = f"{kind}:{key}"
        existing = aps.get_job(job_id, STORE)
        if existing is not None and repr(existing.trigger) == repr(trigger):
            return True
        aps.add_job(
            run_stored,
            trigger,
            args=(kind, key),
            id=job_id,
            jobstore=STORE,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=self.misfire_grace_seconds if grace is True else _whole(grace),
        )
        return True

    def remove(self, kind: str, key: str) -> bool:
        """Remove job ``<kind>:<key>`` if stored. False if this process does not lead."""
        aps = self._aps
        if aps is None:
            return False
        if aps.get_job(f"{kind}:{key}", STORE) is not None:
            aps.remove_job(f"{kind}:{key}", STORE)
        return True

    def sync(self, kind: str, wanted: Mapping[str, object], *, grace: float | None | bool = True) -> bool:
        """Make the stored jobs of ``kind`` exactly ``wanted`` (key to trigger): unchanged ones
        keep their next run time (so a missed run is still caught up), the others are replaced,
        added or removed. False if this process does not lead."""
        aps = self._aps
        if aps is None:
            return False
        prefix = f"{kind}:"
        for job in aps.get_jobs(STORE):
            if job.id.startswith(prefix) and job.id[len(prefix) :] not in wanted:
                aps.remove_job(job.id, STORE)
        for key, trigger in wanted.items():
            self.put(kind, key, trigger, grace=grace)
        return True

    def keys(self, kind: str) -> set[str] | None:
        """The keys of the stored jobs of ``kind``, read from the table without loading the jobs
        (cheap enough to check often); None if this process does not lead."""
        engine = self._engine
        if self._aps is None or engine is None:
            return None
        with engine.connect() as conn:
            rows = conn.execute(_KEYS_SQL, {"prefix": f"{kind}:%"}).all()
        return {str(r[0])[len(kind) + 1 :] for r in rows}

    def stored(self, kind: str) -> dict[str, object]:
        """The stored jobs of ``kind``: key to trigger (empty if this process does not lead)."""
        aps = self._aps
        if aps is None:
            return {}
        prefix = f"{kind}:"
        return {j.id[len(prefix) :]: j.trigger for j in aps.get_jobs(STORE) if j.id.startswith(prefix)}

    def crash_point(self, name: str) -> None:
        """Tests only: SIGKILL this process if ``name`` is the configured crash point."""
        if self.crash_at == name:
            log.warning("crash point %s reached: this process kills itself (a test asked for it)", name)
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    async def _fire_slots(self, job_id: str, slots: list[datetime]) -> None:
        """Call a stored job's handler for each slot, then forget the slot's firing."""
        kind, _, key = job_id.partition(":")
        engine = self._engine
        for at in slots:
            await run_stored(kind, key, at)
            if engine is not None:
                with engine.begin() as conn:
                    conn.execute(_DONE_SQL, {"job": job_id, "at": at})

    async def _replay(self, engine: Engine) -> None:
        """Call the handlers of the firings a previous leader recorded and did not finish (its
        process ended in between), within each one's grace time."""
        with engine.connect() as conn:
            left = conn.execute(_LEFT_SQL).all()
        for job_id, at, grace in left:
            late = (_now() - at).total_seconds()
            if grace is not None and late > grace:
                log.warning("firing %s at %s is %.0f s late (grace %s s): skipped", job_id, at, late, grace)
                with engine.begin() as conn:
                    conn.execute(_DONE_SQL, {"job": job_id, "at": at})
                continue
            log.info("taking up the firing of %s at %s left by the previous leader", job_id, at)
            await self._fire_slots(job_id, [at])

    # -- leadership -------------------------------------------------------------------------------
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
        global _leader
        engine = _store_engine(self.url)
        scheduler: _JobScheduler = AsyncIOScheduler(
            timezone="UTC",
            jobstores={"default": MemoryJobStore(), STORE: SQLAlchemyJobStore(engine=engine, tablename=TABLE)},
            executors={"default": _FiringExecutor(self, engine)},
        )
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
        _leader = self
        self._engine = engine
        try:
            scheduler.start()  # due stored jobs (missed while no one led) are taken now
            self._aps = scheduler
            await self._replay(engine)
            for callback in self._on_lead:
                try:
                    await callback()
                except Exception:
                    log.exception("a scheduler on-lead callback failed")
            self.is_leader.set()
            log.info("this process runs the scheduled jobs (%s)", ", ".join(j.id for j in self.jobs))
            await _watch(conn, self.retry_seconds)
        finally:
            self._aps = None
            self._engine = None
            self.is_leader.clear()
            if _leader is self:
                _leader = None
            scheduler.shutdown(wait=False)
            engine.dispose()


async def _watch(conn: psycopg.AsyncConnection, every: float) -> None:
    """Return (raise) as soon as the lock's connection breaks: a closed socket is seen at once
    while waiting for notices; a half-open one by the check every ``every`` seconds."""
    await conn.execute("LISTEN openblynk_scheduler")
    while True:
        async for _ in conn.notifies(timeout=every):
            pass
        await conn.execute("SELECT 1")


def _store_engine(url: str) -> Engine:
    """A small synchronous SQLAlchemy engine for the job store (APScheduler 3 calls it from the
    event loop; each call is one short statement), connecting with psycopg 3 to ``url`` as
    given (a URI or a conninfo string)."""
    return create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(url),
        pool_size=1,
        max_overflow=2,
        pool_pre_ping=True,
    )


def _whole(seconds: float | None | bool) -> int | None:
    return None if seconds is None or seconds is False else max(1, math.ceil(seconds))


def _guarded(job: Job) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job.func()
        except Exception:
            JOB_RUNS.labels(job.id, "failed").inc()
            log.exception("scheduled job %s failed", job.id)
        else:
            JOB_RUNS.labels(job.id, "ok").inc()

    return run


def _now() -> datetime:
    return datetime.now(UTC)
