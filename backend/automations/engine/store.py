"""The engine's SQL: automations as it runs them, and the automation log (runs and steps).

A ``running`` run belongs to one engine process, its ``owner``: the key of a PostgreSQL advisory
lock (:data:`OWNER_LOCK_CLASS`, owner) that process holds while it lives (:class:`.lease.Lease`).
Every write of a run's progress is *fenced*: it changes the run only while the run is still
``running`` under this store's owner, and raises :class:`RunTaken` otherwise (another process
took it over, believing this one gone), so two processes never both carry one run on. A step is
committed with the run's ``next_action`` in one statement: a run taken over resumes at the action
after the last committed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backend.automations.schemas import Action, Condition, actions_of, condition_of

_AUTOMATION_SQL = """
SELECT a.id, a.org_id, o.name, o.tz, a.name, a.enabled, a.condition, a.actions, a.limit_period_s,
       a.updated_at, a.last_fired_at, d.template_id, a.state
FROM automation a
JOIN organization o ON o.id = a.org_id
LEFT JOIN device d ON d.id = CASE WHEN a.condition ? 'device_id' AND jsonb_typeof(a.condition->'device_id') = 'number'
                                  THEN (a.condition->>'device_id')::bigint END
"""
OWNER_LOCK_CLASS = 0x0B1E_0003
"""First key of the advisory locks engine processes hold while they live (second: the owner)."""
MAX_RESUMES = 3
"""A run whose process ended this many times during it is not resumed again (``interrupted``)."""
_START_SQL = """
WITH run AS (
    INSERT INTO automation_run (automation_id, org_id, trigger, trigger_device_id, trigger_value, slot, owner)
    VALUES (%(automation)s, %(org)s, %(trigger)s,
            (SELECT id FROM device WHERE id = %(device)s), %(value)s, %(slot)s, %(owner)s)
    ON CONFLICT (automation_id, slot) DO NOTHING
    RETURNING id, automation_id),
fired AS (UPDATE automation SET last_fired_at = now() WHERE id IN (SELECT automation_id FROM run))
SELECT id FROM run
"""
_TIMER_START_SQL = """
WITH due AS (
    DELETE FROM automation_timer
    WHERE automation_id = %(automation)s AND device_id = %(device)s AND due_at <= %(at)s
    RETURNING automation_id),
run AS (
    INSERT INTO automation_run (automation_id, org_id, trigger, trigger_device_id, trigger_value, slot, owner)
    SELECT %(automation)s, %(org)s, %(trigger)s, (SELECT id FROM device WHERE id = %(device)s), %(value)s,
           %(slot)s, %(owner)s
    FROM due
    ON CONFLICT (automation_id, slot) DO NOTHING
    RETURNING id, automation_id),
fired AS (UPDATE automation SET last_fired_at = now() WHERE id IN (SELECT automation_id FROM run))
SELECT id FROM run
"""
_STEP_SQL = """
WITH run AS (UPDATE automation_run SET next_action = %(next)s
             WHERE id = %(run)s AND owner = %(owner)s AND status = 'running' RETURNING id)
INSERT INTO automation_step (run_id, position, action_type, ok, detail, started_at, duration_ms)
SELECT id, %(position)s, %(kind)s, %(ok)s, %(detail)s, %(started)s, %(ms)s FROM run
ON CONFLICT (run_id, position) DO UPDATE SET ok = EXCLUDED.ok, detail = EXCLUDED.detail,
    started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms
RETURNING run_id
"""
_WAIT_SQL = """
WITH run AS (UPDATE automation_run SET status = 'waiting', next_action = %(next)s, resume_at = %(until)s, owner = NULL
             WHERE id = %(run)s AND owner = %(owner)s AND status = 'running' RETURNING id)
INSERT INTO automation_step (run_id, position, action_type, ok, detail, started_at, duration_ms)
SELECT id, %(position)s, 'wait', true, %(detail)s, %(started)s, 0 FROM run
ON CONFLICT (run_id, position) DO UPDATE SET ok = EXCLUDED.ok, detail = EXCLUDED.detail,
    started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms
RETURNING run_id
"""
_FINISH_SQL = """
UPDATE automation_run SET finished_at = now(), resume_at = NULL, next_action = %s, owner = NULL,
    status = CASE WHEN EXISTS (SELECT 1 FROM automation_step s WHERE s.run_id = %s AND NOT s.ok)
                  THEN 'failed' ELSE 'ok' END
WHERE id = %s AND owner = %s AND status = 'running' RETURNING id
"""
_CLAIM_SQL = """
UPDATE automation_run SET status = 'running', owner = %s
WHERE id = %s AND status = 'waiting'
RETURNING automation_id, trigger, trigger_device_id, trigger_value, next_action
"""
_RELEASE_SQL = """
UPDATE automation_run SET owner = NULL,
    note = 'stopped before action ' || (next_action + 1) || ' by a shutdown of its process'
WHERE owner = %s AND status = 'running'
"""
_ORPHANS_SQL = """
UPDATE automation_run r SET owner = %(owner)s, resumes = r.resumes + 1,
    status = CASE WHEN r.resumes + 1 >= %(max)s THEN 'interrupted' ELSE 'running' END,
    finished_at = CASE WHEN r.resumes + 1 >= %(max)s THEN now() END,
    note = CASE WHEN r.resumes + 1 >= %(max)s
                THEN 'its process ended ' || (r.resumes + 1) || ' times during the run; not resumed again'
                ELSE 'resumed at action ' || (r.next_action + 1) || ' after its process ended'
                     || CASE WHEN r.owner IS NULL AND r.note <> '' THEN ' (' || r.note || ')' ELSE '' END END
WHERE r.status = 'running' AND r.owner IS DISTINCT FROM %(owner)s
  AND NOT EXISTS (SELECT 1 FROM pg_locks l
                  WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                    AND l.classid = %(class)s::bigint::oid AND l.objid = r.owner::bigint::oid)
RETURNING r.id, r.status, r.automation_id, r.trigger, r.trigger_device_id, r.trigger_value, r.next_action
"""
_TIMER_PUT_SQL = """
INSERT INTO automation_timer (automation_id, device_id, due_at) VALUES (%s, %s, %s)
ON CONFLICT (automation_id, device_id) DO UPDATE SET due_at = EXCLUDED.due_at
"""
_TIMER_DROP_SQL = "DELETE FROM automation_timer WHERE automation_id = %s AND device_id = %s"
_TIMERS_SQL = "SELECT automation_id, device_id, due_at FROM automation_timer"
_WAITING_SQL = "SELECT id, resume_at FROM automation_run WHERE status = 'waiting' AND resume_at IS NOT NULL"
_TARGETS_SQL = """
WITH RECURSIVE sub(id) AS (SELECT %(org)s::bigint UNION ALL
                           SELECT o.id FROM organization o JOIN sub ON o.parent_id = sub.id)
SELECT d.id FROM device d
WHERE d.org_id IN (SELECT id FROM sub)
  AND (%(template)s::bigint IS NULL OR d.template_id = %(template)s)
  AND (%(tag)s::text IS NULL OR EXISTS (SELECT 1 FROM device_tag t WHERE t.device_id = d.id AND t.tag = %(tag)s))
  AND (%(device)s::bigint IS NULL OR d.id = %(device)s)
ORDER BY d.id
"""
_DEVICE_STATES_SQL = "SELECT automation_id, disarmed, last_fired FROM automation_device_state WHERE device_id = %s"
_AUTOMATION_STATES_SQL = """
SELECT device_id, disarmed, last_fired FROM automation_device_state
WHERE automation_id = %s AND device_id = ANY(%s)
"""
_PUT_STATE_SQL = """
INSERT INTO automation_device_state (automation_id, device_id, disarmed, last_fired)
SELECT id, %s, %s, %s FROM automation WHERE id = %s
ON CONFLICT (automation_id, device_id) DO UPDATE SET disarmed = EXCLUDED.disarmed, last_fired = EXCLUDED.last_fired
"""
HOLDER_CHANNEL = "openblynk_rule_holders"
"""NOTIFY channel on which an engine says it now holds a device's rule state (``<owner>:<device>``)."""
KeptState = tuple[int, int, bool, float | None]
"""One kept rule state: automation, device, disarmed, last fired (epoch seconds)."""
_OWNER_SQL = "SELECT u.email FROM device d JOIN app_user u ON u.id = d.owner_id WHERE d.id = %s"


@dataclass(frozen=True)
class Automation:
    """An automation as the engine runs it."""

    id: int
    org_id: int
    org_name: str
    org_tz: str
    name: str
    enabled: bool
    condition: Condition
    actions: list[Action]
    limit_period_s: int
    updated_at: datetime
    last_fired_at: datetime | None
    device_template_id: int | None
    """The template of the condition's device (for a ``device_id`` condition)."""
    state: dict[str, Any]
    """The engine's kept state of a device-state condition (:meth:`.states.StateRule.snapshot`)."""


class RunTaken(Exception):
    """This process no longer carries the run on (another one took it over)."""


@dataclass(frozen=True)
class Resumed:
    """A run taken up again (a waiting one whose time came, or one whose process ended)."""

    automation_id: int
    trigger: str
    device_id: int | None
    value: str | None
    next_action: int
    run_id: int = 0


def _automation(row: Sequence[Any]) -> Automation:
    return Automation(
        id=row[0],
        org_id=row[1],
        org_name=row[2],
        org_tz=row[3] or "UTC",
        name=row[4],
        enabled=row[5],
        condition=condition_of(row[6]),
        actions=actions_of(row[7]),
        limit_period_s=row[8],
        updated_at=row[9],
        last_fired_at=row[10],
        device_template_id=row[11],
        state=row[12] if isinstance(row[12], dict) else {},
    )


class EngineStore:
    """Reads automations, writes the automation log (fenced by ``owner``, see the module)."""

    def __init__(self, pool: AsyncConnectionPool, owner: int) -> None:
        self.pool = pool
        self.owner = owner
        """This process's owner key (held by its :class:`.lease.Lease`)."""

    async def enabled(self) -> list[Automation]:
        """Every enabled automation."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_AUTOMATION_SQL + " WHERE a.enabled ORDER BY a.id")).fetchall()
        return [_automation(r) for r in rows]

    async def get(self, automation_id: int) -> Automation | None:
        """One automation (enabled or not), or None if it is gone."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(_AUTOMATION_SQL + " WHERE a.id = %s", (automation_id,))).fetchone()
        return _automation(row) if row else None

    async def start(
        self,
        automation: Automation,
        trigger: str,
        device_id: int | None,
        value: str | None,
        slot: str | None = None,
    ) -> int | None:
        """Log a new run owned by this process (and when the automation last fired); its id. With
        a ``slot`` (a scheduled run's time), None if that slot already has its run: the claim
        and the run are one row, written in one transaction."""
        args = {"automation": automation.id, "org": automation.org_id, "trigger": trigger, "slot": slot}
        async with self.pool.connection() as conn:
            cur = await conn.execute(_START_SQL, {**args, "device": device_id, "value": value, "owner": self.owner})
            row = await cur.fetchone()
        return int(row[0]) if row else None

    async def start_timer(self, automation: Automation, device_id: int, value: str, at: datetime) -> int | None:
        """The run of a presence timer due at ``at``, if the timer is still there (the device did
        not flip back) and the slot not claimed yet: the timer's removal, the claim and the run
        in one transaction; None otherwise."""
        args = {"automation": automation.id, "org": automation.org_id, "trigger": "presence", "device": device_id}
        slot = f"presence:{device_id}:{at.isoformat()}"
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                _TIMER_START_SQL, {**args, "value": value, "at": at, "slot": slot, "owner": self.owner}
            )
            row = await cur.fetchone()
        return int(row[0]) if row else None

    async def step(
        self, run_id: int, position: int, kind: str, ok: bool, detail: str, started: datetime, ms: int
    ) -> None:
        """Log one action's outcome and that the run goes on at the next one (fenced)."""
        args = {"run": run_id, "owner": self.owner, "next": position + 1, "position": position, "kind": kind}
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                _STEP_SQL, {**args, "ok": ok, "detail": detail[:2000], "started": started, "ms": ms}
            )
            if await cur.fetchone() is None:
                raise RunTaken(f"run {run_id} was taken over")

    async def wait(self, run_id: int, position: int, detail: str, started: datetime, resume_at: datetime) -> None:
        """Log the wait at ``position`` and mark the run waiting until ``resume_at``, then from
        the next action, owned by no process, in one statement (fenced)."""
        args = {"run": run_id, "owner": self.owner, "next": position + 1, "position": position, "until": resume_at}
        async with self.pool.connection() as conn:
            cur = await conn.execute(_WAIT_SQL, {**args, "detail": detail, "started": started})
            if await cur.fetchone() is None:
                raise RunTaken(f"run {run_id} was taken over")

    async def finish(self, run_id: int, actions: int) -> None:
        """Mark a run done: ``failed`` if any of its steps failed, else ``ok`` (fenced)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_FINISH_SQL, (actions, run_id, run_id, self.owner))
            if await cur.fetchone() is None:
                raise RunTaken(f"run {run_id} was taken over")

    async def claim(self, run_id: int) -> Resumed | None:
        """Take a waiting run up again in this process (once: a second claim finds it running);
        None if it is not waiting."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(_CLAIM_SQL, (self.owner, run_id))).fetchone()
        return Resumed(row[0], row[1], row[2], row[3], row[4], run_id) if row else None

    async def release(self) -> int:
        """Give up this process's running runs (a graceful stop): they stay ``running`` at their
        next action, owned by no process, for the leader to resume; how many."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_RELEASE_SQL, (self.owner,))
        return cur.rowcount

    async def orphans(self) -> tuple[list[Resumed], list[int]]:
        """Take over the running runs whose process is gone (its owner lock is free, or it gave
        them up): those to resume here, and those marked ``interrupted`` because their process
        ended :data:`MAX_RESUMES` times during them."""
        args = {"owner": self.owner, "max": MAX_RESUMES, "class": OWNER_LOCK_CLASS}
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_ORPHANS_SQL, args)).fetchall()
        resumed = [Resumed(r[2], r[3], r[4], r[5], r[6], int(r[0])) for r in rows if r[1] == "running"]
        return resumed, [int(r[0]) for r in rows if r[1] != "running"]

    async def put_timers(self, timers: Sequence[tuple[int, int, datetime]]) -> None:
        """Store presence timers (automation, device, due); one already there is replaced."""
        async with self.pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(_TIMER_PUT_SQL, timers)

    async def drop_timers(self, timers: Sequence[tuple[int, int]]) -> None:
        """Remove presence timers (automation, device)."""
        async with self.pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(_TIMER_DROP_SQL, timers)

    async def timers(self) -> list[tuple[int, int, datetime]]:
        """Every stored presence timer (automation, device, due)."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_TIMERS_SQL)).fetchall()
        return [(int(r[0]), int(r[1]), r[2]) for r in rows]

    async def save_states(self, states: Sequence[KeptState]) -> None:
        """Keep device-state rules' states, one row an automation and device (a deleted
        automation's are left out)."""
        async with self.pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(_PUT_STATE_SQL, [(dev, off, last, aid) for aid, dev, off, last in states])

    async def device_states(self, device_id: int) -> dict[int, tuple[bool, float | None]]:
        """A device's kept rule states: automation -> (disarmed, last fired)."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_DEVICE_STATES_SQL, (device_id,))).fetchall()
        return {int(r[0]): (bool(r[1]), r[2]) for r in rows}

    async def automation_states(self, automation_id: int, devices: Sequence[int]) -> list[KeptState]:
        """An automation's kept rule states of ``devices``."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_AUTOMATION_STATES_SQL, (automation_id, list(devices)))).fetchall()
        return [(automation_id, int(r[0]), bool(r[1]), r[2]) for r in rows]

    async def announce(self, device_id: int) -> None:
        """Tell the other engines that this one holds ``device_id``'s rule state now."""
        async with self.pool.connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (HOLDER_CHANNEL, f"{self.owner}:{device_id}"))

    async def waiting(self) -> list[tuple[int, datetime]]:
        """Every waiting run and when it resumes."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_WAITING_SQL)).fetchall()
        return [(int(r[0]), r[1]) for r in rows]

    async def targets(
        self, org_id: int, *, device_id: int | None = None, template_id: int | None = None, tag: str | None = None
    ) -> list[int]:
        """Devices of the organization (and those below it) matching one of the selectors."""
        args = {"org": org_id, "device": device_id, "template": template_id, "tag": tag}
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_TARGETS_SQL, args)).fetchall()
        return [int(r[0]) for r in rows]

    async def owner_email(self, device_id: int) -> str | None:
        """The e-mail address of a device's owner."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(_OWNER_SQL, (device_id,))).fetchone()
        return str(row[0]) if row else None
