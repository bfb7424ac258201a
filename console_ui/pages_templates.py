"""Template pages: the list with a form for a new one, and a template's tabs: info,
datastreams, events, metadata and the web dashboard editor."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template as Page

from backend.access.guards import requires
from backend.access.permissions import Permission as P
from backend.console.context import ConsoleServices
from backend.console.dashboards import ACCEPTS, COLUMNS
from backend.errors import ValidationError
from backend.orgs.tree import OrgTreeService
from backend.templates.schemas import MetaFieldType
from console_ui.render import page

TABS = ("info", "datastreams", "events", "metadata", "dashboard")
META_TYPES = list(MetaFieldType.__args__)  # type: ignore[attr-defined]
WIDGET_NAMES = {
    "switch": "Switch",
    "button": "Button",
    "slider": "Slider",
    "numeric_input": "Numeric input",
    "value": "Value display",
    "gauge": "Gauge",
    "led": "LED",
    "terminal": "Terminal",
    "chart": "Chart",
    "map": "Map",
}


@get("/templates", guards=[requires(P.TEMPLATES_VIEW)])
async def templates_page(
    request: Request,  # type: ignore[type-arg]
    org_tree: NamedDependency[OrgTreeService],
    con: NamedDependency[ConsoleServices],
) -> Page:
    """Templates of the organizations in scope."""
    return page(request, "templates.html", templates=await con.templates.visible(), orgs=await org_tree.list())


@get("/templates/{template_id:int}", guards=[requires(P.TEMPLATES_VIEW)])
async def template_page(
    request: Request,  # type: ignore[type-arg]
    template_id: FromPath[int],
    con: NamedDependency[ConsoleServices],
    tab: FromQuery[str] = "info",
) -> Page:
    """One template, on one of its tabs."""
    if tab not in TABS:
        raise ValidationError(f"tab must be one of {', '.join(TABS)}")
    template = await con.templates.get(template_id)
    datastreams = await con.templates.datastreams(template_id)
    context: dict[str, Any] = {"template": template, "tab": tab, "datastreams": datastreams}
    if tab == "events":
        context["events"] = await con.templates.templates.events(template_id)
    elif tab == "metadata":
        context["fields"] = await con.templates.templates.meta_fields(template_id)
        context["meta_types"] = META_TYPES
    elif tab == "dashboard":
        context["widgets"] = [msgspec.to_builtins(w) for w in await con.templates.dashboard(template_id)]
        context["editor"] = {
            "columns": COLUMNS,
            "names": WIDGET_NAMES,
            "accepts": {k: sorted(v) for k, v in ACCEPTS.items()},
            "datastreams": [{"pin": d.pin, "name": d.name, "type": d.type} for d in datastreams],
        }
    return page(request, "template.html", **context)


ROUTES = [templates_page, template_page]
