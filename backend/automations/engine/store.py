"""The engine's SQL: automations as it runs them, and the automation log (runs and steps)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
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
_START_SQL = """
WITH fired AS (UPDATE automation SET last_fired_at = now() WHERE id = %(automation)s)
INSERT INTO automation_run (automation_id, org_id, trigger, trigger_device_id, trigger_value)
VALUES (%(automation)s, %(org)s, %(trigger)s,
        (SELECT id FROM device WHERE id = %(device)s), %(value)s)
RETURNING id
"""
_STEP_SQL = """
INSERT INTO automation_step (run_id, position, action_type, ok, detail, started_at, duration_ms)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (run_id, position) DO UPDATE SET ok = EXCLUDED.ok, detail = EXCLUDED.detail,
    started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms
"""
_WAIT_SQL = "UPDATE automation_run SET status = 'waiting', next_action = %s, resume_at = %s WHERE id = %s"
_FINISH_SQL = """
UPDATE automation_run SET finished_at = now(), resume_at = NULL, next_action = %s,
    status = CASE WHEN EXISTS (SELECT 1 FROM automation_step s WHERE s.run_id = %s AND NOT s.ok)
                  THEN 'failed' ELSE 'ok' END
WHERE id = %s
"""
_CLAIM_SQL = """
UPDATE automation_run SET status = 'running'
WHERE id = %s AND status = 'waiting'
RETURNING automation_id, trigger, trigger_device_id, trigger_value, next_action
"""
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


@dataclass(frozen=True)
class Resumed:
    """A waiting run taken up again."""

    automation_id: int
    trigger: str
    device_id: int | None
    value: str | None
    next_action: int


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
    """Reads automations, writes the automation log."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

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

    async def start(self, automation: Automation, trigger: str, device_id: int | None, value: str | None) -> int:
        """Log a new run (and when the automation last fired); its id."""
        args = {"automation": automation.id, "org": automation.org_id, "trigger": trigger}
        async with self.pool.connection() as conn:
            cur = await conn.execute(_START_SQL, {**args, "device": device_id, "value": value})
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def step(
        self, run_id: int, position: int, kind: str, ok: bool, detail: str, started: datetime, ms: int
    ) -> None:
        """Log one action's outcome."""
        async with self.pool.connection() as conn:
            await conn.execute(_STEP_SQL, (run_id, position, kind, ok, detail[:2000], started, ms))

    async def wait(self, run_id: int, next_action: int, resume_at: datetime) -> None:
        """Mark a run waiting until ``resume_at``, then from ``next_action``."""
        async with self.pool.connection() as conn:
            await conn.execute(_WAIT_SQL, (next_action, resume_at, run_id))

    async def finish(self, run_id: int, actions: int) -> None:
        """Mark a run done: ``failed`` if any of its steps failed, else ``ok``."""
        async with self.pool.connection() as conn:
            await conn.execute(_FINISH_SQL, (actions, run_id, run_id))

    async def claim(self, run_id: int) -> Resumed | None:
        """Take a waiting run up again (once: a second claim finds it running); None if it is
        not waiting."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(_CLAIM_SQL, (run_id,))).fetchone()
        return Resumed(row[0], row[1], row[2], row[3], row[4]) if row else None

    async def save_states(self, states: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Keep device-state rules' states (automation id, state)."""
        async with self.pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE automation SET state = %s WHERE id = %s", [(Jsonb(state), aid) for aid, state in states]
                )

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
