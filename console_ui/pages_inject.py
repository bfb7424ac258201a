"""Blynk.Inject pages: a manufacturer's static tokens (generate, import a CSV, export CSV and QR
labels), claiming a device with the code on its label (and giving claimed devices back), and
adding a device over Wi-Fi (a provisioning token and the walk-through)."""

from __future__ import annotations

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template as Page

from backend.access.guards import requires, requires_any
from backend.access.permissions import Permission as P
from backend.access.permissions import Principal
from backend.console.context import ConsoleServices
from backend.inject.deps import InjectServices, inject_dependencies
from console_ui.render import page

PAGE_SIZE = 200


@get("/static-tokens", guards=[requires(P.TOKENS_VIEW)], dependencies=inject_dependencies())
async def static_tokens_page(
    request: Request,  # type: ignore[type-arg]
    principal: NamedDependency[Principal],
    con: NamedDependency[ConsoleServices],
    inject: NamedDependency[InjectServices],
    page_no: FromQuery[int] = 0,
) -> Page:
    """Static tokens of the organizations in scope, newest page last; forms to make more."""
    rows, total = await inject.tokens.page(None, page_no, PAGE_SIZE)
    templates = await con.templates.usable() if principal.has(P.TEMPLATES_VIEW) else []
    made = sorted({(t.template_id, t.template_name) for t in rows})
    return page(
        request,
        "static_tokens.html",
        tokens=rows,
        total=total,
        page_no=page_no,
        pages=max(1, -(-total // PAGE_SIZE)),
        templates=templates,
        made=made,
        can_make=principal.has(P.TOKENS_EDIT) and principal.has(P.DEVICES_EDIT),
    )


@get("/claim", guards=[requires_any(P.DEVICES_EDIT, P.DEVICES_EDIT_OWN)], dependencies=inject_dependencies())
async def claim_page(
    request: Request,  # type: ignore[type-arg]
    inject: NamedDependency[InjectServices],
    code: FromQuery[str] = "",
) -> Page:
    """Claim a device with the code on its label (``?code=`` fills it in, as a scanned QR
    link would); the devices claimed so far, each with a button to give it back."""
    return page(request, "claim.html", code=code[:64], claimed=await inject.claims.claimed())


@get("/provision", guards=[requires_any(P.DEVICES_EDIT, P.DEVICES_EDIT_OWN)])
async def provision_page(
    request: Request,  # type: ignore[type-arg]
    con: NamedDependency[ConsoleServices],
) -> Page:
    """Add a device over Wi-Fi: a provisioning token, then the walk-through the mobile app does
    (join the device's access point, send it the network and the token) or the CLI command."""
    return page(request, "provision.html", templates=await con.templates.usable())


ROUTES = [static_tokens_page, claim_page, provision_page]
