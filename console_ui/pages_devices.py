"""Device pages: the list (search, filters, live online status), a new device, and a device's
page with its dashboard, info and vitals, timeline, datastream values and auth token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template as Page

from backend.access.guards import requires, requires_any
from backend.access.permissions import Permission as P
from backend.access.permissions import Principal
from backend.console.context import ConsoleServices
from backend.console.dashboards import Widget
from backend.devices.tags import DeviceTags
from backend.errors import ValidationError
from backend.orgs.tree import OrgTreeService
from backend.templates.models import Template
from console_ui.render import page

VIEW = requires_any(P.DEVICES_VIEW, P.DEVICES_VIEW_OWN)
TABS = ("dashboard", "info", "timeline", "datastreams")


def _int_or_none(text: str, name: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise ValidationError(f"{name} must be a number")
    return int(text)


@get("/devices", guards=[VIEW])
async def devices_page(
    request: Request,  # type: ignore[type-arg]
    principal: NamedDependency[Principal],
    org_tree: NamedDependency[OrgTreeService],
    con: NamedDependency[ConsoleServices],
    q: FromQuery[str] = "",
    status: FromQuery[str] = "",
    template: FromQuery[str] = "",
    org: FromQuery[str] = "",
) -> Page:
    """Every visible device; htmx asks for the rows alone while the user types or filters."""
    rows = await con.devices.search(q, status, _int_or_none(template, "template"), _int_or_none(org, "org"))
    if request.headers.get("hx-request") == "true":
        return page(request, "device_rows.html", devices=rows)
    templates = await con.templates.visible() if principal.has(P.TEMPLATES_VIEW) else []
    return page(
        request,
        "devices.html",
        devices=rows,
        q=q,
        status=status,
        template=template,
        org=org,
        templates=templates,
        orgs=await org_tree.list(),
    )


@get("/devices/new", guards=[requires(P.DEVICES_EDIT)])
async def new_device_page(
    request: Request,  # type: ignore[type-arg]
    org_tree: NamedDependency[OrgTreeService],
    con: NamedDependency[ConsoleServices],
    template: FromQuery[str] = "",
) -> Page:
    """Add a device: name, template, organization."""
    return page(
        request,
        "device_new.html",
        templates=await con.templates.usable(),
        orgs=await org_tree.list(),
        chosen=_int_or_none(template, "template"),
    )


def _dashboard_context(widgets: list[Widget], datastreams: dict[int, Any]) -> list[dict[str, Any]]:
    """Widgets with their datastream's settings, as the dashboard script reads them."""
    out = []
    for w in widgets:
        ds = datastreams.get(w.pin)
        data = msgspec.to_builtins(w)
        data["ds"] = (
            None
            if ds is None
            else {
                "name": ds.name,
                "type": ds.type,
                "min": ds.min,
                "max": ds.max,
                "units": ds.units,
                "decimals": ds.decimals,
                "wait": ds.wait_confirmation,
                "save_raw": ds.save_raw,
                "enum": ds.enum_values,
            }
        )
        out.append(data)
    return out


@get("/devices/{device_id:int}", guards=[VIEW])
async def device_page(
    request: Request,  # type: ignore[type-arg]
    device_id: FromPath[int],
    principal: NamedDependency[Principal],
    device_tags: NamedDependency[DeviceTags],
    org_tree: NamedDependency[OrgTreeService],
    con: NamedDependency[ConsoleServices],
    tab: FromQuery[str] = "dashboard",
) -> Page:
    """A device: its template's dashboard with live values, info and vitals, timeline, values."""
    if tab not in TABS:
        raise ValidationError(f"tab must be one of {', '.join(TABS)}")
    device = await con.devices.get(device_id)
    datastreams = {d.pin: d for d in await con.templates.templates.datastreams(device.template_id)}
    template = await con.session.get(Template, device.template_id)  # may be a parent organization's
    context: dict[str, Any] = {"device": device, "tab": tab, "datastreams": datastreams, "template": template}
    context["can_control"] = principal.has(P.DEVICES_EDIT) or (
        principal.has(P.DEVICES_EDIT_OWN) and device.owner_id == principal.user_id
    )
    if tab == "dashboard":
        widgets = await con.templates.dashboards.get(device.template_id)
        context["widgets"] = _dashboard_context(widgets, datastreams)
    elif tab == "info":
        context["metadata"] = await con.devices.metadata(device_id)
        context["tags"] = (await device_tags.of(device_id)).tags
        context["now"] = datetime.now(UTC)
        context["orgs"] = await org_tree.list() if principal.has(P.DEVICES_MOVE) else []
    elif tab == "timeline":
        context["entries"] = await con.devices.timeline(device_id, 200)
    else:
        context["latest"] = await con.devices.latest(device_id)
    return page(request, "device.html", **context)


ROUTES = [devices_page, new_device_page, device_page]
