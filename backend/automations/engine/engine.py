"""The automation engine: when automations fire, and a queue of runs for the runner.

One :class:`AutomationEngine` per app process. What fires an automation:

- **time** (``schedule``, ``interval``, ``once``, ``sun``): a stored scheduler job per automation
  (``automation:<id>``, see :mod:`.triggers` and :mod:`.jobs`), kept only by the process leading
  the scheduler: it brings every job up to date when it becomes leader, and when told of a change;
- **device state**: :meth:`_on_values`, a listener of ``DeviceSignals`` in the ingest path. It
  is given only values of the datastreams automations use (the engine watches exactly those),
  finds the rules of a value by dict lookups (by pin then device, by template and pin) and
  only queues runs; see :mod:`.states` for when a rule fires. The rule state of a device is
  *held* by the engine that ingests its values: the first value of a device this process does
  not hold waits (with the device's later ones, in order) until its state is loaded from
  ``automation_device_state`` and the other processes are told to forget theirs
  (:mod:`.holders`); a changed state is written back within about half a second, and at once
  for a device another process takes over;
- **presence** (online/offline for N seconds): a timer per automation and device, stored in
  ``automation_timer`` with its due time by the process that saw the transition and deleted when
  the device flips back first; the leader runs it as a stored scheduler job
  (``automation-timer:<automation id>:<device id>``), so it survives restarts and fires once;
- **event logged**: a dict lookup by device or template and event code;
- **scene**: :meth:`run_now` (the console's button, the platform API).

Runs wait in a bounded queue and ``workers`` tasks execute them with the :class:`.runner.Runner`.

Exactly once for scheduled runs: each stored job's slot is claimed with the run's row, and the
leader takes over the running runs of processes that are gone (both in :mod:`.jobs`; runs belong
to this process's :class:`.lease.Lease`). A graceful stop lets each run end its action in flight
(up to :data:`STOP_GRACE_SECONDS`), logs the runs still queued and gives them all up for the
leader to resume.

A change of an automation (CORE's service calls :meth:`changed`) is applied here at once and sent
to the other processes as a change notice (``automation:<id>``), which they apply with
:meth:`apply`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from backend.access.permissions import Principal
from backend.automations.engine.holders import Holders
from backend.automations.engine.jobs import StoredJobs
from backend.automations.engine.lease import Lease, new_owner
from backend.automations.engine.runner import Devices, Notifications, Pending, Runner, Trigger, Webhooks
from backend.automations.engine.states import NO_BAND, StateRule, band_of
from backend.automations.engine.store import Automation, EngineStore, KeptState
from backend.automations.engine.timers import presence_plan
from backend.automations.schemas import DeviceState, Event, Presence, kind_of
from backend.db.changes import CHANNEL, Change
from backend.devices.data import DataService
from backend.devices.signals import (
    DeviceEventSignal,
    DeviceSignals,
    PresenceSignal,
    StoredRow,
    StoredValue,
    StoredValues,
)
from backend.devices.timeline import Timeline
from backend.errors import NotFoundError
from backend.scheduler import Scheduler
from backend.tasks import cancel
from backend.templates.values import shown_text

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 10.0
"""How long a graceful stop waits for the actions in flight to end (then they are cancelled)."""
QUEUE_SIZE = 10_000
"""Runs waiting for a worker in one process; beyond it new runs are dropped (and logged)."""


class _Entry:
    """One device's device-state rules of one datastream, and the band of numbers that change
    nothing for them now."""

    __slots__ = ("device_id", "high", "low", "rules")

    def __init__(self, device_id: int) -> None:
        self.device_id = device_id
        self.rules: list[StateRule] = []
        self.low, self.high = NO_BAND

    def rebound(self, held: bool) -> None:
        """Compute the band again (the rules' state changed); none while the device's state is
        not held here, so that its next value is looked at (and its state loaded first)."""
        self.low, self.high = band_of(self.rules, self.device_id) if held else NO_BAND


@dataclass
class _Sources:
    """Non-value rules by what they listen to."""

    presence_device: dict[int, list[Automation]]
    presence_template: dict[int, list[Automation]]
    event_device: dict[tuple[int, str], list[Automation]]
    event_template: dict[tuple[int, str], list[Automation]]


class AutomationEngine:
    """Fires automations and runs them (see the module's docstring)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        scheduler: Scheduler,
        signals: DeviceSignals,
        devices: Devices,
        data: DataService,
        timeline: Timeline,
        notifier: Notifications | None = None,
        webhooks: Webhooks | None = None,
        *,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.scheduler = scheduler
        self.signals = signals
        self.devices = devices
        owner = new_owner()
        self.store = EngineStore(pool, owner)
        conninfo = pool.conninfo if pool is not None else ""
        url = conninfo if isinstance(conninfo, str) else ""  # the app's pool: a URL
        self.lease = Lease(url, owner)
        self.holders = Holders(url, owner, self._taken, self._lost)
        self.runner = Runner(
            self.store,
            devices,
            data,
            timeline,
            notifier,
            webhooks,
            self._ask_resume,
            self._is_stopping,
            scheduler.crash_point,
        )
        self.workers = workers
        self.clock = clock
        """Now in epoch seconds (limit periods; tests pass their own)."""
        self._automations: dict[int, Automation] = {}
        self._rules: dict[int, StateRule] = {}
        self._by_pin: dict[int, dict[int, _Entry]] = {}
        """Device rules: by pin, then by device (int keys: the value path builds no key)."""
        self._by_template: dict[tuple[int, int], list[StateRule]] = {}
        self._watched: set[tuple[int, int]] = set()
        self._sources = _Sources({}, {}, {}, {})
        self._stopping = False
        self._active = 0
        """Runs the workers are executing now."""
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._held: set[int] = set()
        """Devices whose rule state this process holds (loaded, and told the others)."""
        self._arriving: dict[int, list[StoredRow]] = {}
        """Values of devices whose state is being loaded, in order."""
        self._dirty: set[tuple[int, int]] = set()
        """(automation, device) whose state changed since it was saved."""
        self._unsaved: list[KeptState] = []
        """States of devices another process took over, to save first."""
        self._save = asyncio.Event()
        self.jobs = StoredJobs(pool, scheduler, self.store, self._enqueue, self._reaches, self._is_stopping)
        signals.on_values(self._on_values)
        signals.on_event(self._on_event)
        signals.on_presence(self._on_presence)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Take this process's lease, load the enabled automations and start the workers."""
        await self.lease.start()
        await self.holders.start()
        for automation in await self.store.enabled():
            self._put(automation)
        self._reindex()
        self._tasks = [asyncio.create_task(self._work(), name=f"automation-worker-{n}") for n in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._keep_states(), name="automation-states"))
        self._tasks.append(asyncio.create_task(self.jobs.keep_recovering(), name="automation-recovery"))

    async def stop(self) -> None:
        """Stop gracefully: each run ends its action in flight (up to :data:`STOP_GRACE_SECONDS`,
        then it is cancelled and that action will be done again), the queued runs are logged,
        and every run of this process not done is given up for the leader to resume."""
        self._stopping = True
        log.info("automation engine stopping: %d run(s) in flight end their action", self._active)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while (self._active or self._arriving) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in [*self._tasks, *self._background]:
            await cancel(task)
        self._tasks = []
        try:
            await self._keep_queued()
            released = await self.store.release()
            if released:
                log.info("%d automation run(s) left for the next leader to resume", released)
        finally:
            await self.lease.stop()
            await self.holders.stop()
            await self._save_states()

    async def _keep_queued(self) -> None:
        """Log the queued runs that have no row yet (device values, events), owned by this
        process, so that :meth:`.store.EngineStore.release` leaves them to the leader too."""
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            self._queue.task_done()
            if pending.run_id is None and await self._reaches(pending):
                await self.runner.start(pending.automation, pending.trigger)

    def _is_stopping(self) -> bool:
        return self._stopping

    async def _ask_resume(self, run_id: int, at: datetime) -> None:
        await self.jobs.ask_resume(run_id, at)

    @property
    def loaded(self) -> int:
        """How many enabled automations this process knows (``/healthz``)."""
        return len(self._automations)

    async def idle(self) -> None:
        """Wait until every queued run has been executed (for tests and benchmarks)."""
        await self._queue.join()

    # -- changes --------------------------------------------------------------------------------
    async def changed(self, automation_id: int) -> None:
        """An automation was created, changed or deleted: apply it here and tell the others."""
        await self._reload(automation_id)
        async with self.pool.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, Change("automation", automation_id).encode()))

    async def apply(self, change: Change) -> None:
        """A change notice from any process (``ChangeListener`` handler)."""
        if change.kind == "automation":
            await self._reload(change.id)
        elif change.kind == "automation_run" and self.scheduler.leading:
            await self.jobs.sync_waiting()
        elif change.kind == "automation_timer" and self.scheduler.leading:
            await self.jobs.sync_timers()

    async def _reload(self, automation_id: int) -> None:
        automation = await self.store.get(automation_id)
        before = self._automations.pop(automation_id, None)
        rule = self._rules.pop(automation_id, None)
        if automation is not None and automation.enabled:
            self._put(automation)
            same = before is not None and (before.condition, before.limit_period_s) == (
                automation.condition,
                automation.limit_period_s,
            )
            new = self._rules.get(automation.id)
            if new is not None and rule is not None and same:
                new.adopt(rule)  # unchanged: go on with the state in memory
            elif new is not None and self._held:  # the kept state of the devices held here
                for _aid, device, disarmed, last in await self.store.automation_states(
                    automation.id, sorted(self._held)
                ):
                    if device in self._held:
                        new.put(device, disarmed, last)
        self._reindex()
        self.jobs.changed(automation_id, automation if automation is not None and automation.enabled else None)

    def _put(self, automation: Automation) -> None:
        self._automations[automation.id] = automation
        condition = automation.condition
        if isinstance(condition, DeviceState):
            self._rules[automation.id] = StateRule(
                automation.id, condition, automation.limit_period_s, automation.org_tz
            )  # its devices' states are loaded as they are seen (see the module)

    def _reindex(self) -> None:
        """Rebuild the lookups from the automations (rules keep their per-device state) and
        watch exactly the datastreams the device-state rules use."""
        by_pin: dict[int, dict[int, _Entry]] = {}
        by_template: dict[tuple[int, int], list[StateRule]] = {}
        sources = _Sources({}, {}, {}, {})
        watched: set[tuple[int, int]] = set()
        for automation in self._automations.values():
            condition = automation.condition
            if isinstance(condition, DeviceState):
                rule = self._rules[automation.id]
                if condition.device_id is not None:
                    if automation.device_template_id is None:
                        continue  # the device is gone
                    devices = by_pin.setdefault(condition.pin, {})
                    entry = devices.setdefault(condition.device_id, _Entry(condition.device_id))
                    entry.rules.append(rule)
                    watched.add((automation.device_template_id, condition.pin))
                elif condition.template_id is not None:
                    by_template.setdefault((condition.template_id, condition.pin), []).append(rule)
                    watched.add((condition.template_id, condition.pin))
            elif isinstance(condition, Presence):
                if condition.device_id is not None:
                    sources.presence_device.setdefault(condition.device_id, []).append(automation)
                elif condition.template_id is not None:
                    sources.presence_template.setdefault(condition.template_id, []).append(automation)
            elif isinstance(condition, Event):
                if condition.device_id is not None:
                    sources.event_device.setdefault((condition.device_id, condition.code), []).append(automation)
                elif condition.template_id is not None:
                    sources.event_template.setdefault((condition.template_id, condition.code), []).append(automation)
        for entry in (entry for devices in by_pin.values() for entry in devices.values()):
            entry.rebound(entry.device_id in self._held)
        for pair in watched - self._watched:
            self.signals.watch(*pair)
        for pair in self._watched - watched:
            self.signals.unwatch(*pair)
        self._by_pin, self._by_template, self._sources, self._watched = by_pin, by_template, sources, watched

    # -- scenes ---------------------------------------------------------------------------------
    async def run_now(self, automation_id: int, actor: Principal | None = None) -> int:
        """Run an automation now (a scene; the caller checked ``actor`` may); the new run's id.
        The actions go on in the background."""
        automation = await self.store.get(automation_id)
        if automation is None:
            raise NotFoundError(f"no automation {automation_id}")
        trigger = Trigger("scene" if kind_of(automation.condition) == "scene" else "manual")
        run_id = await self.runner.start(automation, trigger)
        self._enqueue(Pending(automation, trigger, run_id))
        return run_id

    # -- device listeners (synchronous, cheap: they only queue) ---------------------------------
    def _on_values(self, stored: Sequence[StoredValue]) -> None:
        """Device-state rules on each value (the ingest's hot path). A device's rules of a
        datastream come with the band of numbers that change nothing for them in their current
        state (:func:`.states.band_of`: below ``lt 20``'s threshold while armed, say): a value
        in it costs two dict lookups by int (pin, device) and one comparison. Template rules see
        every value."""
        rows = stored.rows if isinstance(stored, StoredValues) else [_row(v) for v in stored]
        self._on_rows(rows)

    def _on_rows(self, rows: Sequence[StoredRow]) -> None:
        """:meth:`_on_values` (a device not held here: its values wait for its state, :meth:`_arrive`)."""
        by_pin, by_template, held = self._by_pin.get, self._by_template, self._held
        now = self.clock()
        none: dict[int, _Entry] = {}
        for device_id, template_id, pin, name, shown, number, at in rows:
            entry = (by_pin(pin) or none).get(device_id)
            if entry is not None and (number is None or not entry.low <= number < entry.high):
                if device_id not in held:
                    self._arrive((device_id, template_id, pin, name, shown, number, at))
                    continue
                if self._check(entry.rules, device_id, shown, number, at, now, name):
                    entry.rebound(True)
            if by_template and (rules := by_template.get((template_id, pin))) is not None:
                if device_id not in held:
                    self._arrive((device_id, template_id, pin, name, shown, number, at))
                    continue
                self._check(rules, device_id, shown, number, at, now, name)

    # -- which process holds a device's rule state (see the module) -----------------------------
    def _arrive(self, row: StoredRow) -> None:
        """A value of a device not held here: keep it, and load the device's state (once)."""
        device_id = row[0]
        waiting = self._arriving.get(device_id)
        if waiting is not None:
            waiting.append(row)
            return
        self._arriving[device_id] = [row]
        task = asyncio.create_task(self._take(device_id), name=f"automation-take-{device_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _take(self, device_id: int) -> None:
        """Tell the other processes this one holds the device now, load its kept state, then
        judge its values that waited, in order."""
        delay = 0.2
        for attempt in range(5):
            try:
                await self.store.announce(device_id)
                states = await self.store.device_states(device_id)
                break
            except Exception:
                if attempt == 4:
                    log.exception("loading the rule state of device %s failed: judged without it", device_id)
                    states = {}
                    break
                await asyncio.sleep(delay)
                delay *= 2
        for automation_id, rule in self._rules.items():
            kept = states.get(automation_id)
            if kept is not None:
                rule.put(device_id, *kept)
            else:
                rule.forget(device_id)
        self._held.add(device_id)
        self._rebound(device_id)
        self._on_rows(self._arriving.pop(device_id, []))

    def _rebound(self, device_id: int) -> None:
        held = device_id in self._held
        for devices in self._by_pin.values():
            if (entry := devices.get(device_id)) is not None:
                entry.rebound(held)

    def _taken(self, device_id: int) -> None:
        """Another process holds the device now: forget its state here (saving what changed)."""
        if device_id not in self._held:
            return
        self._held.discard(device_id)
        for automation_id, rule in self._rules.items():
            if (automation_id, device_id) in self._dirty:
                self._dirty.discard((automation_id, device_id))
                self._unsaved.append((automation_id, device_id, *rule.state_of(device_id)))
                self._save.set()
            rule.forget(device_id)
        self._rebound(device_id)

    def _lost(self) -> None:
        """Notices may have been missed: hold no device (each one's state is loaded again)."""
        for device_id in list(self._held):
            self._taken(device_id)

    def _check(
        self,
        rules: list[StateRule],
        device_id: int,
        shown: str | float,
        number: float | None,
        at: datetime,
        now: float,
        name: str,
    ) -> bool:
        """Run ``rules`` on one value; whether any rule's state changed."""
        changed = False
        for rule in rules:
            if rule.check_row(device_id, shown, number, at, now):
                self._fired(rule, device_id, shown, name)
            if rule.dirty:
                rule.dirty, changed = False, True
                self._dirty.add((rule.automation_id, device_id))
                self._save.set()
        return changed

    def _fired(self, rule: StateRule, device_id: int, shown: str | float, name: str) -> None:
        automation = self._automations.get(rule.automation_id)
        if automation is not None:
            self._enqueue(Pending(automation, Trigger("device_state", device_id, shown_text(shown), name)))

    async def _keep_states(self) -> None:
        """Save changed rule states, at most twice a second."""
        while True:
            await self._save.wait()
            self._save.clear()
            try:
                await self._save_states()
            except Exception:
                log.exception("saving automation states failed")
            await asyncio.sleep(0.5)

    async def _save_states(self) -> None:
        dirty, self._dirty = self._dirty, set()
        states, self._unsaved = self._unsaved, []
        for aid, device in sorted(dirty):
            if (rule := self._rules.get(aid)) is not None:
                states.append((aid, device, *rule.state_of(device)))
        if states:
            await self.store.save_states(states)

    def _on_event(self, signal: DeviceEventSignal) -> None:
        sources = self._sources
        found = sources.event_device.get((signal.device_id, signal.code), []) + sources.event_template.get(
            (signal.template_id, signal.code), []
        )
        for automation in found:
            trigger = Trigger("event", signal.device_id, signal.code, "", signal.code, signal.description)
            self._enqueue(Pending(automation, trigger))

    def _on_presence(self, signal: PresenceSignal) -> None:
        sources = self._sources
        if not sources.presence_device and not sources.presence_template:
            return
        task = asyncio.create_task(self._presence(signal))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _presence(self, signal: PresenceSignal) -> None:
        device = await self.devices.get(signal.device_id)
        sources = self._sources
        found = list(sources.presence_device.get(signal.device_id, []))
        if device is not None:
            found += sources.presence_template.get(device.template_id, [])
        plan = presence_plan(found, signal)
        for automation in plan.now:
            value = "online" if signal.online else "offline"
            self._enqueue(Pending(automation, Trigger("presence", signal.device_id, value)))
        if plan.disarm:
            await self.store.drop_timers(plan.disarm)
        if plan.arm:
            await self.store.put_timers(plan.arm)
        if plan.arm or plan.disarm:
            await self.jobs.timers_changed(plan.arm, plan.disarm)

    # -- running --------------------------------------------------------------------------------
    async def _reaches(self, pending: Pending) -> bool:
        """Whether the trigger device is within the automation's reach: a ``template_id``
        condition means that template's devices in the automation's organization and below it
        (the value listener sees every device of the template; a sibling's never fires it)."""
        condition = pending.automation.condition
        device_id = pending.trigger.device_id
        if device_id is None or getattr(condition, "template_id", None) is None:
            return True
        return bool(await self.store.targets(pending.automation.org_id, device_id=device_id))

    def _enqueue(self, pending: Pending) -> None:
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            log.error("automation queue full: run of automation %s dropped", pending.automation.id)

    async def _work(self) -> None:
        while True:
            pending = await self._queue.get()
            if self._stopping:  # kept for :meth:`stop` (it logs the runs that have no row yet)
                self._queue.put_nowait(pending)
                self._queue.task_done()
                return
            self._active += 1
            try:
                run_id = pending.run_id
                if run_id is None:
                    if not await self._reaches(pending):
                        continue
                    run_id = await self.runner.start(pending.automation, pending.trigger)
                await self.runner.proceed(run_id, pending.automation, pending.trigger, pending.position)
            except Exception:
                log.exception("run of automation %s failed", pending.automation.id)
            finally:
                self._active -= 1
                self._queue.task_done()


def _row(value: StoredValue) -> StoredRow:
    return (value.device_id, value.template_id, value.pin, value.name, value.text, value.number, value.at)
