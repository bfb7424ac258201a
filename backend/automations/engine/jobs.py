"""The engine's stored scheduler jobs, each fired once, and the leader's recovery of runs.

Three kinds of stored jobs (``backend.scheduler``), kept only by the process leading the
scheduler, which brings them up to date when it becomes leader (:meth:`StoredJobs.sync`):

- ``automation:<id>`` (:data:`FIRE`): a time-based automation (``schedule``, ``interval``,
  ``once``, ``sun``; see :mod:`.triggers`). Its handler gets the slot (the run time it was
  scheduled for) and claims it with the run's row (unique ``(automation, slot)``), so a slot a
  next leader fires again after a kill finds it taken: one slot, one run;
- ``automation-run:<run id>`` (:data:`RESUME`): a waiting run's time came; claimed once
  (``waiting`` to ``running``);
- ``automation-timer:<automation id>:<device id>`` (:data:`TIMER`): a presence timer of
  ``automation_timer`` fell due; claimed with the timer's removal, so it fires once, and not at
  all once the device flipped back (its timer is gone).

A process that does not lead stores the waiting run or the timer and tells the leader with a
change notice. The leader, every ``retry_seconds``, schedules those it has no job for (their
process died before telling it) and takes over the running runs of processes that are gone
(:meth:`StoredJobs.recover`, see :mod:`.lease`), resuming them at their next action.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.triggers.date import DateTrigger
from psycopg_pool import AsyncConnectionPool

from backend.automations.engine.runner import Pending, Trigger
from backend.automations.engine.store import Automation, EngineStore, Resumed
from backend.automations.engine.triggers import once_at, trigger_for
from backend.automations.schemas import Once, Presence, kind_of
from backend.db.changes import CHANNEL, Change
from backend.scheduler import Scheduler

log = logging.getLogger(__name__)
FIRE = "automation"
"""Scheduler jobs of time-based automations: ``automation:<id>``."""
RESUME = "automation-run"
"""Scheduler jobs that resume waiting runs: ``automation-run:<run id>``."""
TIMER = "automation-timer"
"""Scheduler jobs of presence timers: ``automation-timer:<automation id>:<device id>``."""


class StoredJobs:
    """The engine's stored jobs and the leader's recovery (see the module's docstring)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        scheduler: Scheduler,
        store: EngineStore,
        enqueue: Callable[[Pending], None],
        reaches: Callable[[Pending], Awaitable[bool]],
        stopping: Callable[[], bool],
    ) -> None:
        self.pool = pool
        self.scheduler = scheduler
        self.store = store
        self.enqueue = enqueue
        """Queues a run for the engine's workers."""
        self.reaches = reaches
        """Whether a run's trigger device is within its automation's reach."""
        self.stopping = stopping
        """Whether this process is stopping (it then takes over no run)."""
        scheduler.handle(FIRE, self._fire)
        scheduler.handle(RESUME, self._resume)
        scheduler.handle(TIMER, self._timer_fired)
        scheduler.on_lead(self.sync)

    def changed(self, automation_id: int, automation: Automation | None) -> None:
        """An automation changed (None: gone or disabled): its time job, if this process leads."""
        trigger = self.trigger(automation) if automation is not None else None
        if trigger is None:
            self.scheduler.remove(FIRE, str(automation_id))
        else:
            self.scheduler.put(FIRE, str(automation_id), trigger)

    def trigger(self, automation: Automation) -> object | None:
        """The stored job's trigger of a time-based automation (None for the others, and for a
        one-off that ran or is past its grace time)."""
        condition = automation.condition
        if isinstance(condition, Once):
            at = once_at(condition, automation.org_tz)
            late = (datetime.now(UTC) - at).total_seconds()
            fired = automation.last_fired_at is not None and automation.last_fired_at >= at
            if fired or late > self.scheduler.misfire_grace_seconds:
                return None
        return trigger_for(condition, automation.org_tz, automation.updated_at)

    async def sync(self) -> None:
        """Make the stored jobs match the automations and the waiting runs (when this process
        becomes leader; unchanged jobs keep their next run time, so missed runs are caught up)."""
        wanted: dict[str, object] = {}
        for automation in await self.store.enabled():
            trigger = self.trigger(automation)
            if trigger is not None:
                wanted[str(automation.id)] = trigger
        self.scheduler.sync(FIRE, wanted)
        await self.sync_waiting()
        await self.sync_timers()
        await self.recover()

    async def sync_waiting(self) -> None:
        waiting = {str(run): DateTrigger(run_date=at, timezone=UTC) for run, at in await self.store.waiting()}
        self.scheduler.sync(RESUME, waiting, grace=None)

    async def sync_timers(self) -> None:
        timers = {f"{a}:{d}": DateTrigger(run_date=due, timezone=UTC) for a, d, due in await self.store.timers()}
        self.scheduler.sync(TIMER, timers, grace=None)

    async def _fire(self, key: str, at: datetime) -> None:
        """A time-based automation's job for the slot ``at`` (in the leader): the slot is claimed
        with the run's row, so it runs once however often it is fired."""
        automation = await self.store.get(int(key))
        if automation is None or not automation.enabled:
            return
        trigger = Trigger(kind_of(automation.condition))
        slot = f"time:{at.astimezone(UTC).isoformat()}"
        run_id = await self.store.start(automation, trigger.kind, None, None, slot)
        if run_id is None:
            log.info("automation %s: slot %s already ran (fired again after a leader change)", key, slot)
            return
        self.scheduler.crash_point("fire-claimed")
        self.enqueue(Pending(automation, trigger, run_id))

    async def _resume(self, key: str, at: datetime) -> None:
        """A waiting run's time came (in the leader)."""
        resumed = await self.store.claim(int(key))
        if resumed is not None:
            await self._take_up(resumed)

    async def _take_up(self, resumed: Resumed) -> None:
        """Queue a run taken up again, at its next action."""
        automation = await self.store.get(resumed.automation_id)
        if automation is None:
            return
        trigger = Trigger(resumed.trigger, resumed.device_id, resumed.value)
        self.enqueue(Pending(automation, trigger, resumed.run_id, resumed.next_action))

    async def recover(self) -> None:
        """Take over the running runs of processes that are gone and resume them here (in the
        leader; a run whose process ended too often is marked ``interrupted`` instead)."""
        if self.stopping():
            return
        resumed, interrupted = await self.store.orphans()
        for run_id in interrupted:
            log.warning("automation run %d interrupted: its process ended too often during it", run_id)
        for run in resumed:
            log.info("resuming automation run %d at action %d (its process ended)", run.run_id, run.next_action + 1)
            await self._take_up(run)

    async def _catch_up(self) -> None:
        """Schedule the waiting runs and timers that have no job (their process stored them and
        died before the leader heard of it): one read of each and of the jobs' keys."""
        resume, timers = self.scheduler.keys(RESUME), self.scheduler.keys(TIMER)
        if resume is None or timers is None:
            return
        for run_id, at in await self.store.waiting():
            if str(run_id) not in resume:
                self.scheduler.put(RESUME, str(run_id), DateTrigger(run_date=at, timezone=UTC), grace=None)
        for automation_id, device_id, due in await self.store.timers():
            if f"{automation_id}:{device_id}" not in timers:
                self.scheduler.put(
                    TIMER, f"{automation_id}:{device_id}", DateTrigger(run_date=due, timezone=UTC), grace=None
                )

    async def keep_recovering(self) -> None:
        """In the leader, every ``retry_seconds``: resume orphaned runs, and schedule waiting
        runs and timers a process stored without reaching the leader (it died in between)."""
        while True:
            await asyncio.sleep(self.scheduler.retry_seconds)
            if not self.scheduler.leading:
                continue
            try:
                await self._catch_up()
                await self.recover()
            except Exception:
                log.exception("recovering automation runs failed")

    async def ask_resume(self, run_id: int, at: datetime) -> None:
        """Have a waiting run resumed at ``at``: here when leading, else through the leader."""
        if not self.scheduler.put(RESUME, str(run_id), DateTrigger(run_date=at, timezone=UTC), grace=None):
            async with self.pool.connection() as conn:  # the leader schedules it
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, Change("automation_run", run_id).encode()))

    async def timers_changed(self, arm: list[tuple[int, int, datetime]], disarm: list[tuple[int, int]]) -> None:
        """Schedule (or unschedule) stored timers: here when leading, else through the leader."""
        if self.scheduler.leading:
            for automation_id, device_id in disarm:
                self.scheduler.remove(TIMER, f"{automation_id}:{device_id}")
            for automation_id, device_id, due in arm:
                self.scheduler.put(
                    TIMER, f"{automation_id}:{device_id}", DateTrigger(run_date=due, timezone=UTC), grace=None
                )
            return
        async with self.pool.connection() as conn:  # the leader schedules them
            for automation_id in sorted({a for a, *_ in arm} | {a for a, _ in disarm}):
                await conn.execute(
                    "SELECT pg_notify(%s, %s)", (CHANNEL, Change("automation_timer", automation_id).encode())
                )

    async def _timer_fired(self, key: str, at: datetime) -> None:
        """A presence timer's time came (in the leader): the run, if the timer is still there
        (the device did not flip back), claimed with the timer's removal."""
        automation_id, _, device_id = key.partition(":")
        automation = await self.store.get(int(automation_id))
        if automation is None or not automation.enabled or not isinstance(automation.condition, Presence):
            return
        trigger = Trigger("presence", int(device_id), "online" if automation.condition.online else "offline")
        if not await self.reaches(Pending(automation, trigger)):
            return
        run_id = await self.store.start_timer(automation, int(device_id), trigger.value or "", at)
        if run_id is not None:
            self.enqueue(Pending(automation, trigger, run_id))
