"""The runner: an automation's actions, in order, each logged with its outcome and timing.

A run is a row of ``automation_run``; each action a row of ``automation_step``. An action that
fails (a device without that datastream, a refused value, the e-mail limit spent, a webhook
answering 500) is logged as failed with the reason and **the next actions still run**; the run
ends ``failed`` if any action failed, else ``ok``.

A ``wait`` ends the run's turn: the run is stored ``waiting`` with the next action and the time
to resume, and a stored scheduler job (``automation-run:<run id>``, run however late) resumes it
in whichever process leads then. So "turn on, wait 10 minutes, turn off" survives a restart: the
job and the run are in PostgreSQL. A run is resumed once (:meth:`EngineStore.claim`). A process
that does not lead asks the leader to schedule the resumption with a change notice.

Each action's outcome is committed with the run's next position (:meth:`EngineStore.step`), so a
run whose process ended is resumed by the leader at the action after the last committed one; the
action in flight at that instant (started, not committed) is done again: at least once. A run
another process took over stops here at its next write (:class:`.store.RunTaken`). While the
process stops, a run ends its turn before its next action (``stopping``), left for the leader.

Texts (e-mail, notification, event descriptions) take Blynk's placeholders
(:mod:`backend.placeholders`).
"""

from __future__ import annotations

import logging
import time as clock
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from backend.automations.engine.store import Automation, EngineStore, RunTaken
from backend.automations.engine.triggers import hhmm, next_daily, zone
from backend.automations.schemas import Action, Control, Email, LogEvent, Notify, Wait, Webhook, kind_of
from backend.devices.actions import Actor
from backend.devices.data import DataService
from backend.devices.registry import DeviceInfo
from backend.devices.timeline import Timeline
from backend.placeholders import render

log = logging.getLogger(__name__)


class Notifications(Protocol):
    """What the runner uses of ``backend.notifications.service.Notifier``."""

    async def in_app(
        self,
        org_id: int,
        user_ids: Sequence[int] | None,
        title: str,
        body: str,
        *,
        device_id: int | None = None,
        source: str = "automation",
        source_id: int | None = None,
    ) -> int: ...

    async def email(self, org_id: int, to: Sequence[str], subject: str, body: str) -> None: ...


class Delivered(Protocol):
    """What the runner reads of a webhook delivery."""

    @property
    def ok(self) -> bool: ...

    @property
    def status(self) -> int | None: ...

    @property
    def error(self) -> str | None: ...


class Webhooks(Protocol):
    """What the runner uses of ``backend.webhooks.delivery.WebhookSender``."""

    async def fire(self, webhook_id: int, org_id: int, context: Mapping[str, str], *, trigger: str) -> Delivered: ...


class Devices(Protocol):
    """Devices by id (``backend.devices.registry.DeviceRegistry``)."""

    async def get(self, device_id: int) -> DeviceInfo | None: ...


class ActionError(Exception):
    """An action that could not be done (its message is the step's detail)."""


@dataclass(frozen=True)
class Trigger:
    """What started a run: its kind, and for device conditions the device and value."""

    kind: str
    device_id: int | None = None
    value: str | None = None
    datastream: str = ""
    event_code: str = ""
    event_description: str = ""


@dataclass(frozen=True)
class Pending:
    """A run to execute: new (``run_id`` None) or resumed at ``position``."""

    automation: Automation
    trigger: Trigger
    run_id: int | None = None
    position: int = 0


class Runner:
    """Runs automations' actions (see the module's docstring)."""

    def __init__(
        self,
        store: EngineStore,
        devices: Devices,
        data: DataService,
        timeline: Timeline,
        notifier: Notifications | None,
        webhooks: Webhooks | None,
        resume: Callable[[int, datetime], Awaitable[None]],
        stopping: Callable[[], bool] = lambda: False,
        crash_point: Callable[[str], None] = lambda name: None,
    ) -> None:
        self.store = store
        self.devices = devices
        self.data = data
        self.timeline = timeline
        self.notifier = notifier
        self.webhooks = webhooks
        self.resume = resume
        """Asks for a waiting run to be resumed at a time (the engine's scheduler job)."""
        self.stopping = stopping
        """Whether this process is stopping (a run then ends its turn before its next action)."""
        self.crash_point = crash_point
        """Tests only: the scheduler's :meth:`~backend.scheduler.Scheduler.crash_point`."""

    async def start(self, automation: Automation, trigger: Trigger) -> int:
        """Log a new run; its id (run it with :meth:`proceed`)."""
        run_id = await self.store.start(automation, trigger.kind, trigger.device_id, trigger.value)
        assert run_id is not None  # only a slot can be taken already
        return run_id

    async def proceed(self, run_id: int, automation: Automation, trigger: Trigger, position: int = 0) -> None:
        """Run the actions from ``position`` until the end, a wait, or this process stopping
        (the run then stays ``running`` at its next action, for the leader to resume)."""
        try:
            await self._proceed(run_id, automation, trigger, position)
        except RunTaken:
            log.warning("run %d of automation %s was taken over by another process", run_id, automation.id)

    async def _proceed(self, run_id: int, automation: Automation, trigger: Trigger, position: int) -> None:
        context = await self._context(automation, trigger)
        actions = automation.actions
        for index in range(position, len(actions)):
            if self.stopping():
                log.info("run %d of automation %s stops before action %d: shutting down", run_id, automation.id, index)
                return
            action = actions[index]
            started, t0 = datetime.now(UTC), clock.perf_counter()
            if isinstance(action, Wait):
                until = self._wait_until(action, automation, started)
                await self.store.wait(run_id, index, f"until {until.isoformat()}", started, until)
                await self.resume(run_id, until)
                return
            try:
                detail = await self._act(action, automation, trigger, context)
                ok = True
            except Exception as exc:  # any failure is the step's outcome; the next actions still run
                ok, detail = False, str(exc) or type(exc).__name__
                log.info("automation %s action %d (%s) failed: %s", automation.id, index + 1, kind_of(action), detail)
            ms = int((clock.perf_counter() - t0) * 1000)
            await self.store.step(run_id, index, kind_of(action), ok, detail, started, ms)
            self.crash_point("step-done")
        await self.store.finish(run_id, len(actions))

    def _wait_until(self, action: Wait, automation: Automation, now: datetime) -> datetime:
        if action.seconds is not None:
            return now + timedelta(seconds=action.seconds)
        assert action.until is not None
        return next_daily(hhmm(action.until), (), zone(automation.org_tz), now + timedelta(seconds=1))

    async def _context(self, automation: Automation, trigger: Trigger) -> dict[str, str]:
        """The placeholders' values."""
        context = {
            "ORG_NAME": automation.org_name,
            "AUTOMATION_NAME": automation.name,
            "TIMESTAMP": datetime.now(UTC).isoformat(timespec="seconds"),
            "TRIGGER_VALUE": trigger.value or "",
            "DATASTREAM_NAME": trigger.datastream,
            "EVENT_CODE": trigger.event_code,
            "EVENT_DESCRIPTION": trigger.event_description,
        }
        if trigger.device_id is not None:
            device = await self.devices.get(trigger.device_id)
            if device is not None:
                context |= {
                    "DEVICE_NAME": device.name,
                    "DEVICE_ID": str(device.id),
                    "TEMPLATE_NAME": device.template_name,
                    "PRODUCT_NAME": device.template_name,
                }
        return context

    async def _act(self, action: Action, automation: Automation, trigger: Trigger, context: dict[str, str]) -> str:
        """Do one action; its detail for the log (raises with the reason when it fails)."""
        if isinstance(action, Control):
            return await self._control(action, automation)
        if isinstance(action, Email):
            return await self._email(action, automation, trigger, context)
        if isinstance(action, Notify):
            notifier = self._notifier()
            count = await notifier.in_app(
                automation.org_id,
                action.user_ids,
                render(action.title, context),
                render(action.body, context),
                device_id=trigger.device_id,
                source="automation",
                source_id=automation.id,
            )
            return f"notified {count} user(s)"
        if isinstance(action, Webhook):
            if self.webhooks is None:
                raise ActionError("webhooks are not available in this process")
            delivery = await self.webhooks.fire(action.webhook_id, automation.org_id, context, trigger="automation")
            if not delivery.ok:
                raise ActionError(f"webhook failed: {delivery.error or delivery.status}")
            return f"webhook answered {delivery.status}"
        if isinstance(action, LogEvent):
            device_id = action.device_id if action.device_id is not None else trigger.device_id
            if device_id is None:
                raise ActionError("no device to log the event on")
            device = await self._device(automation, device_id)
            await self.timeline.log_event(device, action.code, render(action.description, context))
            return f"event {action.code} logged on device {device_id}"
        raise ActionError(f"unknown action {kind_of(action)}")

    def _notifier(self) -> Notifications:
        if self.notifier is None:
            raise ActionError("notifications are not available in this process")
        return self.notifier

    async def _device(self, automation: Automation, device_id: int) -> DeviceInfo:
        """A device of the automation's organization (or one below it)."""
        if not await self.store.targets(automation.org_id, device_id=device_id):
            raise ActionError(f"device {device_id} is not in the automation's organization")
        device = await self.devices.get(device_id)
        if device is None:
            raise ActionError(f"device {device_id} is gone")
        return device

    async def _control(self, action: Control, automation: Automation) -> str:
        target = action.target
        ids = await self.store.targets(
            automation.org_id, device_id=target.device_id, template_id=target.template_id, tag=target.tag
        )
        if not ids:
            raise ActionError("no device matches the target")
        actor = Actor(f"automation:{automation.id}")
        failed: list[str] = []
        for device_id in ids:
            device = await self.devices.get(device_id)
            spec = device.by_pin.get(action.pin) if device is not None else None
            if device is None or spec is None:
                failed.append(f"device {device_id}: no datastream V{action.pin}")
                continue
            try:
                await self.data.write_from_server(device, spec, action.value, actor)
            except Exception as exc:
                failed.append(f"device {device_id}: {exc}")
        done = f"V{action.pin}={action.value} on {len(ids) - len(failed)} of {len(ids)} device(s)"
        if failed:
            raise ActionError(done + "; " + "; ".join(failed[:10]))
        return done

    async def _email(self, action: Email, automation: Automation, trigger: Trigger, context: dict[str, str]) -> str:
        notifier = self._notifier()
        if action.to == "owner":
            owner = await self.store.owner_email(trigger.device_id) if trigger.device_id is not None else None
            if owner is None:
                raise ActionError("the trigger device has no owner to e-mail")
            to = [owner]
        else:
            to = list(action.to)
        await notifier.email(automation.org_id, to, render(action.subject, context), render(action.body, context))
        return f"e-mailed {', '.join(to)}"
