"""Template pages: the list with a form for a new one, and a template's tabs: info,
datastreams, events, metadata, the web dashboard editor and the mobile dashboard editor."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template as Page

from backend.access.guards import requires
from backend.access.permissions import Permission as P
from backend.console import mobile
from backend.console.context import ConsoleServices
from backend.console.dashboards import ACCEPTS, COLUMNS
from backend.errors import ValidationError
from backend.orgs.tree import OrgTreeService
from backend.templates.models import Datastream
from backend.templates.schemas import MetaFieldType
from console_ui.render import page

TABS = ("info", "datastreams", "events", "metadata", "dashboard", "mobile")
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

MOBILE_NAMES = {
    "switch": "Switch",
    "button": "Button",
    "image_button": "Image button",
    "slider": "Slider",
    "step": "Step control",
    "value": "Value display",
    "labeled_value": "Labeled value",
    "gauge": "Gauge",
    "led": "LED",
    "chart": "Chart",
    "segmented": "Segmented switch",
    "menu": "Menu",
    "terminal": "Terminal",
    "map": "Map",
}


def _mobile_editor(datastreams: list[Datastream], org_id: int) -> dict[str, Any]:
    """What the mobile dashboard editor's script needs besides the widgets (the image buttons'
    pictures come from ``org_id``'s image library, which the script lists)."""
    return {
        "org_id": org_id,
        "columns": mobile.COLUMNS,
        "names": MOBILE_NAMES,
        "accepts": {k: sorted(v) for k, v in mobile.ACCEPTS.items()},
        "options": mobile.OPTIONS,
        "datastreams": [
            {"pin": d.pin, "name": d.name, "type": d.type, "min": d.min, "max": d.max, "enum": d.enum_values or {}}
            for d in datastreams
        ],
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
    elif tab == "mobile":
        context["widgets"] = [msgspec.to_builtins(w) for w in await con.templates.mobile_dashboard(template_id)]
        context["editor"] = _mobile_editor(datastreams, template.org_id)
    return page(request, "template.html", **context)


ROUTES = [templates_page, template_page]
