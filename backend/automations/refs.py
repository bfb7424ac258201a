"""What an automation names must be its organization's: devices, templates, tags, webhooks, users.

An automation of organization X may reach the devices, tags, webhooks and users of X and of
the organizations below it that the caller also sees, and the templates X may use (its own
and those of the organizations above it, as a device of X may). Anything else is refused with
the same ``ValidationError`` whether it exists elsewhere or not, so one tenant learns nothing
of another's ids. Datastream pins and event codes must exist on the template, and a control
action's value must fit its datastream (as the HTTP API checks it), where the target names one
template; a tag's devices may have several, so the engine checks each when it runs.

The engine applies the same reach when it runs: a ``template_id`` condition or target means
the devices of that template inside X and below it, never a sibling's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope, ancestry, subtree
from backend.automations.schemas import (
    AutomationIn,
    Control,
    DeviceState,
    Event,
    LogEvent,
    Notify,
    Presence,
    Webhook,
)
from backend.db.sql import fetch_all
from backend.errors import ValidationError
from backend.templates.models import Datastream, EventDef
from backend.templates.services import spec_of
from backend.templates.values import checked_value

NUMERIC_TYPES = frozenset({"integer", "double", "enum"})
_NUMERIC_OPS = frozenset({"gt", "ge", "lt", "le", "between"})


@dataclass(frozen=True, slots=True)
class Reach:
    """The organizations an automation of ``org_id`` may name things in."""

    org_id: int
    orgs: frozenset[int]
    """``org_id`` and the organizations below it that the caller sees."""
    templates_from: frozenset[int]
    """``org_id`` and the organizations above it (their templates are usable)."""


async def reach_of(session: AsyncSession, scope: Scope, org_id: int) -> Reach:
    """The reach of an automation of ``org_id`` (an organization of the caller's scope)."""
    below = frozenset(await subtree(session, org_id)) & await scope.org_ids()
    return Reach(org_id, below, frozenset(await ancestry(session, org_id)))


class References:
    """Checks an automation's references against its organization's reach."""

    def __init__(self, session: AsyncSession, reach: Reach, max_string_bytes: int) -> None:
        self.session = session
        self.reach = reach
        self.max_string_bytes = max_string_bytes
        self._device_templates: dict[int, int] = {}

    async def check(self, automation: AutomationIn) -> None:
        """Raise ``ValidationError`` naming the first reference outside the reach."""
        cond = automation.condition
        await self._devices(_device_ids(automation))
        if isinstance(cond, DeviceState | Presence | Event):
            template = await self._template_of(cond.device_id, cond.template_id)
            if isinstance(cond, DeviceState):
                ds = await self._datastream(template, cond.pin, "the condition")
                if cond.op in _NUMERIC_OPS and ds.type not in NUMERIC_TYPES:
                    raise ValidationError(f"the condition compares numbers, but datastream V{cond.pin} holds text")
            elif isinstance(cond, Event):
                await self._event(template, cond.code, "the condition")
        for position, action in enumerate(automation.actions, start=1):
            await self._action(position, action)

    async def _action(self, position: int, action: object) -> None:
        where = f"action {position}"
        if isinstance(action, Control):
            if action.target.tag is not None:
                await self._tag(action.target.tag, where)
                return
            template = await self._template_of(action.target.device_id, action.target.template_id)
            ds = await self._datastream(template, action.pin, where)
            try:
                checked_value(spec_of(ds), action.value, self.max_string_bytes)
            except ValidationError as exc:
                raise ValidationError(f"{where}: {exc.message}") from None
        elif isinstance(action, LogEvent) and action.device_id is not None:
            await self._event(self._device_templates[action.device_id], action.code, where)
        elif isinstance(action, Notify) and action.user_ids is not None:
            await self._owned("app_user", action.user_ids, "user", where)
        elif isinstance(action, Webhook):
            await self._owned("webhook", [action.webhook_id], "webhook", where)

    async def _devices(self, ids: set[int]) -> None:
        if not ids:
            return
        rows = await fetch_all(
            self.session,
            "SELECT id, template_id FROM device WHERE id = ANY(:ids) AND org_id = ANY(:orgs)",
            ids=sorted(ids),
            orgs=sorted(self.reach.orgs),
        )
        self._device_templates = {int(r["id"]): int(r["template_id"]) for r in rows}
        missing = sorted(ids - self._device_templates.keys())
        if missing:
            raise ValidationError(f"no device {missing[0]} in this organization")

    async def _template_of(self, device_id: int | None, template_id: int | None) -> int:
        if device_id is not None:
            return self._device_templates[device_id]
        assert template_id is not None
        rows = await fetch_all(
            self.session,
            "SELECT id FROM template WHERE id = :id AND org_id = ANY(:orgs)",
            id=template_id,
            orgs=sorted(self.reach.templates_from),
        )
        if not rows:
            raise ValidationError(f"no template {template_id} for this organization")
        return template_id

    async def _datastream(self, template_id: int, pin: int, where: str) -> Datastream:
        result = await self.session.exec(
            select(Datastream).where(col(Datastream.template_id) == template_id, col(Datastream.pin) == pin)
        )
        ds = result.first()
        if ds is None:
            raise ValidationError(f"{where}: the template has no datastream on V{pin}")
        return ds

    async def _event(self, template_id: int, code: str, where: str) -> None:
        result = await self.session.exec(
            select(EventDef.id).where(col(EventDef.template_id) == template_id, col(EventDef.code) == code)
        )
        if result.first() is None:
            raise ValidationError(f"{where}: the template has no event {code!r}")

    async def _tag(self, tag: str, where: str) -> None:
        rows = await fetch_all(
            self.session,
            "SELECT 1 AS ok FROM device_tag t JOIN device d ON d.id = t.device_id "
            "WHERE t.tag = :tag AND d.org_id = ANY(:orgs) LIMIT 1",
            tag=tag,
            orgs=sorted(self.reach.orgs),
        )
        if not rows:
            raise ValidationError(f"{where}: no device of this organization carries the tag {tag!r}")

    async def _owned(self, table: str, ids: list[int], what: str, where: str) -> None:
        rows = await fetch_all(
            self.session,
            f"SELECT id FROM {table} WHERE id = ANY(:ids) AND org_id = ANY(:orgs)",  # noqa: S608 (table is ours)
            ids=sorted(set(ids)),
            orgs=sorted(self.reach.orgs),
        )
        missing = sorted(set(ids) - {int(r["id"]) for r in rows})
        if missing:
            raise ValidationError(f"{where}: no {what} {missing[0]} in this organization")


def _device_ids(automation: AutomationIn) -> set[int]:
    """Every device the automation names."""
    ids: set[int] = set()
    cond = automation.condition
    if isinstance(cond, DeviceState | Presence | Event) and cond.device_id is not None:
        ids.add(cond.device_id)
    for action in automation.actions:
        if isinstance(action, Control) and action.target.device_id is not None:
            ids.add(action.target.device_id)
        elif isinstance(action, LogEvent) and action.device_id is not None:
            ids.add(action.device_id)
    return ids
