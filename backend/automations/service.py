"""Automations within one principal's scope: make, change, enable, delete, run, and read the log.

An automation belongs to one organization of the caller's scope; an automation outside the
scope is answered as missing (``NotFoundError``), as everywhere. What it names must be within
its organization's reach (:mod:`backend.automations.refs`). Blynk's per-organization limits
(``automations_per_org``, ``actions_per_automation``) are refused with a ``ValidationError``
saying the limit. Every change is written to the audit log in the same transaction, and sends
an ``automation:<id>`` change notice so every process's engine reloads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.automations.choices import Choices, choices
from backend.automations.log import read_runs
from backend.automations.refs import References, reach_of
from backend.automations.runner import SceneRunner
from backend.automations.schemas import (
    AutomationIn,
    AutomationOut,
    RunOut,
    Scene,
    actions_of,
    condition_of,
    kind_of,
)
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_all, fetch_one
from backend.errors import NotFoundError, ValidationError

_COLUMNS = "id, org_id, name, enabled, condition, actions, limit_period_s, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class Limits:
    """Blynk's per-organization limits, and the longest string value a control may set."""

    automations_per_org: int = 50
    actions_per_automation: int = 50
    max_string_bytes: int = 1024


def automation_out(row: Any) -> AutomationOut:
    """The wire form of an ``automation`` row (its JSON was checked when it was saved)."""
    return AutomationOut(
        id=int(row["id"]),
        org_id=int(row["org_id"]),
        name=row["name"],
        enabled=bool(row["enabled"]),
        condition=condition_of(row["condition"]),
        actions=actions_of(row["actions"]),
        limit_period_s=int(row["limit_period_s"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class AutomationService:
    """Automations of the organizations one principal sees."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, limits: Limits) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit
        self.limits = limits

    async def listing(self, org_id: int | None, page: int, size: int) -> tuple[list[AutomationOut], int]:
        """Automations of one organization of the scope, or of the whole scope, by name."""
        orgs = await self._orgs(org_id)
        rows = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM automation WHERE org_id = ANY(:orgs) "
            "ORDER BY lower(name), id LIMIT :size OFFSET :offset",
            orgs=orgs,
            size=size,
            offset=page * size,
        )
        total = int(rows[0]["total"]) if rows else await self._count(orgs)
        return [automation_out(r) for r in rows], total

    async def get(self, automation_id: int) -> AutomationOut:
        """One automation of the scope."""
        return automation_out(await self._row(automation_id))

    async def create(self, org_id: int | None, data: AutomationIn) -> AutomationOut:
        """A new automation of ``org_id`` (the caller's organization by default)."""
        org = self.principal.org_id if org_id is None else org_id
        await self.scope.require_org(org)
        if await self._count([org]) >= self.limits.automations_per_org:
            raise ValidationError(
                f"the organization has the most automations it may have ({self.limits.automations_per_org})"
            )
        await self._check(org, data)
        row = await fetch_one(
            self.session,
            "INSERT INTO automation (org_id, name, enabled, condition, actions, limit_period_s, created_by) "
            "VALUES (:org, :name, :enabled, CAST(:condition AS jsonb), CAST(:actions AS jsonb), :limit, :by) "
            f"RETURNING {_COLUMNS}",
            org=org,
            by=self.principal.user_id or None,
            **_columns(data),
        )
        assert row is not None
        await self._changed(int(row["id"]), org, "automation.create", name=data.name)
        return automation_out(row)

    async def update(self, automation_id: int, data: AutomationIn) -> AutomationOut:
        """Replace an automation's name, flag, condition, actions and limit period."""
        current = await self._row(automation_id)
        await self._check(int(current["org_id"]), data)
        row = await fetch_one(
            self.session,
            "UPDATE automation SET name = :name, enabled = :enabled, condition = CAST(:condition AS jsonb), "
            "actions = CAST(:actions AS jsonb), limit_period_s = :limit, updated_at = now(), state = '{}'::jsonb "
            f"WHERE id = :id RETURNING {_COLUMNS}",
            id=automation_id,
            **_columns(data),
        )
        assert row is not None
        # the engine's per-device rule state (armed, last fired) starts again with the new rule
        await execute(self.session, "DELETE FROM automation_device_state WHERE automation_id = :id", id=automation_id)
        await self._changed(automation_id, int(row["org_id"]), "automation.update", name=data.name)
        return automation_out(row)

    async def set_enabled(self, automation_id: int, enabled: bool) -> AutomationOut:
        """Turn an automation on or off."""
        await self._row(automation_id)
        row = await fetch_one(
            self.session,
            f"UPDATE automation SET enabled = :on, updated_at = now() WHERE id = :id RETURNING {_COLUMNS}",
            id=automation_id,
            on=enabled,
        )
        assert row is not None
        action = "automation.enable" if enabled else "automation.disable"
        await self._changed(automation_id, int(row["org_id"]), action, name=row["name"])
        return automation_out(row)

    async def delete(self, automation_id: int) -> None:
        """Delete an automation and its log (a run waiting in it never resumes)."""
        row = await self._row(automation_id)
        await execute(self.session, "DELETE FROM automation WHERE id = :id", id=automation_id)
        await self._changed(automation_id, int(row["org_id"]), "automation.delete", name=row["name"])

    async def run(self, automation_id: int, runner: SceneRunner) -> int:
        """Run a scene now; the id of its run (its actions go on in the background)."""
        automation = await self.get(automation_id)
        if not isinstance(automation.condition, Scene):
            raise ValidationError(
                f"only a scene runs by hand; this automation runs on its {kind_of(automation.condition)} condition"
            )
        if not automation.enabled:
            raise ValidationError("the scene is disabled; enable it to run it")
        await self.audit.record(
            self.principal, automation.org_id, "automation.run", "automation", automation_id, name=automation.name
        )
        return await runner.run_now(automation_id, self.principal)

    async def runs(
        self, automation_id: int | None, org_id: int | None, page: int, size: int
    ) -> tuple[list[RunOut], int]:
        """The log: runs (of one automation, one organization or the whole scope), newest first,
        each with its actions' outcomes."""
        if automation_id is not None:
            await self._row(automation_id)
        return await read_runs(self.session, await self._orgs(org_id), automation_id, page, size)

    async def choices(self, org_id: int | None) -> Choices:
        """What an automation of ``org_id`` (the caller's organization by default) may name, for
        the editor's pickers."""
        org = self.principal.org_id if org_id is None else org_id
        await self.scope.require_org(org)
        return await choices(self.session, self.principal, await reach_of(self.session, self.scope, org))

    async def _check(self, org_id: int, data: AutomationIn) -> None:
        if len(data.actions) > self.limits.actions_per_automation:
            raise ValidationError(f"an automation holds at most {self.limits.actions_per_automation} actions")
        reach = await reach_of(self.session, self.scope, org_id)
        await References(self.session, reach, self.limits.max_string_bytes).check(data)

    async def _row(self, automation_id: int) -> Any:
        row = await fetch_one(
            self.session,
            f"SELECT {_COLUMNS} FROM automation WHERE id = :id AND org_id = ANY(:orgs)",
            id=automation_id,
            orgs=sorted(await self.scope.org_ids()),
        )
        if row is None:
            raise NotFoundError("automation not found")
        return row

    async def _orgs(self, org_id: int | None) -> list[int]:
        if org_id is not None:
            await self.scope.require_org(org_id)
            return [org_id]
        return sorted(await self.scope.org_ids())

    async def _count(self, orgs: list[int]) -> int:
        row = await fetch_one(self.session, "SELECT count(*) AS n FROM automation WHERE org_id = ANY(:orgs)", orgs=orgs)
        return int(row["n"]) if row else 0

    async def _changed(self, automation_id: int, org_id: int, action: str, **details: Any) -> None:
        await self.audit.record(self.principal, org_id, action, "automation", automation_id, **details)
        await notify(self.session, Change("automation", automation_id))


def _columns(data: AutomationIn) -> dict[str, Any]:
    return {
        "name": data.name,
        "enabled": data.enabled,
        "condition": msgspec.json.encode(data.condition).decode(),
        "actions": msgspec.json.encode(data.actions).decode(),
        "limit": data.limit_period_s,
    }
