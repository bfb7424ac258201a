"""Organization settings pages of Blynk's Settings: the actions (audit) log of an organization,
filtered by user, action and time, paged, with a CSV export (``/api/audit/export``); and the
OAuth2 clients of the platform API (Settings → Developers → OAuth2), made and revoked through
``/api/oauth2/clients``, a new client's secret shown once by ``static/developer.js``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template as Page
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.guards import requires
from backend.access.paging import page_args
from backend.access.permissions import DESCRIPTIONS, Principal
from backend.access.permissions import Permission as P
from backend.access.scope import Scope
from backend.audit.controllers import audit_filter
from backend.audit.services import AuditService
from backend.orgs.tree import OrgTreeService
from backend.platform_api.oauth import OAuthClientService
from console_ui.render import page

AUDIT_PAGE_SIZE = 50


@get("/audit", guards=[requires(P.AUDIT_VIEW)])
async def audit_page(
    request: Request,  # type: ignore[type-arg]
    principal: NamedDependency[Principal],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    org_tree: NamedDependency[OrgTreeService],
    org: FromQuery[int | None] = None,
    user: FromQuery[str] = "",
    action: FromQuery[str] = "",
    since: FromQuery[str] = "",
    until: FromQuery[str] = "",
    page_no: FromQuery[int] = 0,
) -> Page:
    """The log of one organization of the scope, newest first; htmx asks for the results alone."""
    page_no, size = page_args(page_no, AUDIT_PAGE_SIZE)
    wanted = audit_filter(user, action, since, until)
    org_id = org if org is not None else principal.org_id
    await org_scope.require_org(org_id)
    entries, total = await audit.page(org_id, page_no, size, wanted)
    query = {"org_id": org_id, "user": user, "action": action, "since": since, "until": until}
    here = {"org": org_id, "user": user, "action": action, "since": since, "until": until}
    context: dict[str, Any] = {
        "entries": [(e, json.dumps(e.details, ensure_ascii=False, default=str) if e.details else "") for e in entries],
        "total": total,
        "page_no": page_no,
        "pages": max(1, -(-total // size)),
        "export_url": "/api/audit/export?" + urlencode({k: v for k, v in query.items() if v != ""}),
        "page_url": "/audit?" + urlencode({k: v for k, v in here.items() if v != ""}) + "&page_no=",
    }
    if request.headers.get("hx-request") == "true":
        return page(request, "audit_results.html", **context)
    return page(request, "audit.html", orgs=await org_tree.list(), org=org_id, filters=here, **context)


@get("/oauth2-clients", guards=[requires(P.API_CLIENTS)])
async def oauth_clients_page(
    request: Request,  # type: ignore[type-arg]
    principal: NamedDependency[Principal],
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    org_tree: NamedDependency[OrgTreeService],
) -> Page:
    """The platform API's clients of the organizations in scope, and a form for a new one
    offering the permissions the signed-in user holds."""
    clients = await OAuthClientService(db_session, org_scope, audit).list_clients(None)
    offered = [(p.value, DESCRIPTIONS[p]) for p in P if principal.has(p)]
    return page(request, "oauth_clients.html", clients=clients, offered=offered, orgs=await org_tree.list())


ROUTES = [audit_page, oauth_clients_page]
