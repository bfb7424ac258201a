"""Automation pages: the list (enable switch, run a scene), the editor of one automation's
condition and ordered actions, and the log of runs. Changes go through
``/api/console/automations``; the editor's script (``static/automations.js``) builds its form
from the automation and the organization's pickers, passed as JSON."""

from __future__ import annotations

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template as Page

from backend.access.guards import requires
from backend.access.paging import page_args
from backend.access.permissions import Permission as P
from backend.access.permissions import Principal
from backend.automations.schemas import kind_of
from backend.automations.service import AutomationService
from backend.orgs.tree import OrgTreeService
from console_ui.render import page

LIST_SIZE = 1000
LOG_SIZE = 50
WHEN = {
    "schedule": "At a time of day",
    "interval": "Every N minutes",
    "once": "Once",
    "sun": "Sunrise / sunset",
    "device_state": "Device state",
    "presence": "Device online / offline",
    "event": "Event logged",
    "scene": "Scene (run by hand)",
}
"""The condition kinds, as the pages name them."""


@get("/automations", guards=[requires(P.AUTOMATIONS_VIEW)])
async def automations_page(
    request: Request,  # type: ignore[type-arg]
    automations: NamedDependency[AutomationService],
    org_tree: NamedDependency[OrgTreeService],
) -> Page:
    """Automations of the organizations in scope, by name."""
    found, _total = await automations.listing(None, 0, LIST_SIZE)
    rows = [{"a": a, "kind": kind_of(a.condition)} for a in found]
    return page(request, "automations.html", rows=rows, when=WHEN, orgs=await org_tree.list())


@get("/automations/new", guards=[requires(P.AUTOMATIONS_CREATE)])
async def new_automation_page(
    request: Request,  # type: ignore[type-arg]
    automations: NamedDependency[AutomationService],
    org_tree: NamedDependency[OrgTreeService],
    org_id: FromQuery[int | None] = None,
) -> Page:
    """The editor of a new automation of ``org_id`` (the caller's organization by default)."""
    picks = await automations.choices(org_id)
    return page(
        request, "automation.html", automation=None, editor=_editor(None, picks, True), orgs=await org_tree.list()
    )


@get("/automations/{automation_id:int}", guards=[requires(P.AUTOMATIONS_VIEW)])
async def automation_page(
    request: Request,  # type: ignore[type-arg]
    automation_id: FromPath[int],
    automations: NamedDependency[AutomationService],
    principal: NamedDependency[Principal],
) -> Page:
    """One automation in the editor (read only without ``automations.edit``)."""
    automation = await automations.get(automation_id)
    picks = await automations.choices(automation.org_id)
    editable = principal.has(P.AUTOMATIONS_EDIT)
    return page(request, "automation.html", automation=automation, editor=_editor(automation, picks, editable), orgs=[])


@get("/automations/log", guards=[requires(P.AUTOMATIONS_VIEW)])
async def automation_log_page(
    request: Request,  # type: ignore[type-arg]
    automations: NamedDependency[AutomationService],
    automation_id: FromQuery[int | None] = None,
    page_number: FromQuery[int] = 0,
) -> Page:
    """Runs, newest first, with each action's outcome and timing; failures stand out."""
    number, size = page_args(page_number, LOG_SIZE)
    runs, total = await automations.runs(automation_id, None, number, size)
    shown = await automations.get(automation_id) if automation_id is not None else None
    return page(
        request,
        "automation_log.html",
        runs=runs,
        total=total,
        page_number=number,
        pages=max(1, -(-total // size)),
        automation=shown,
    )


def _editor(automation: object, picks: object, editable: bool) -> dict[str, object]:
    """What the editor's script is given (as JSON in a data attribute)."""
    return {
        "automation": msgspec.to_builtins(automation) if automation is not None else None,
        "choices": msgspec.to_builtins(picks),
        "editable": editable,
        "when": WHEN,
    }


ROUTES = [automations_page, new_automation_page, automation_page, automation_log_page]
