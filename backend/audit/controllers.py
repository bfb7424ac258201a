"""The audit log over HTTP: ``GET /api/audit?org_id=&page=&size=``."""

from __future__ import annotations

from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar import get

from backend.access.guards import requires
from backend.access.paging import Page, page_args
from backend.access.permissions import Permission
from backend.accounts.context import ApiServices
from backend.audit.schemas import AuditOut


@get("/audit", guards=[requires(Permission.AUDIT_VIEW)])
async def audit_log(svc: NamedDependency[ApiServices], org_id: FromQuery[int | None] = None, page: FromQuery[int] = 0, size: FromQuery[int] = 50) -> Page[AuditOut]:
    """Changes in one organization of the caller's scope (their own by default), newest first."""
    page, size = page_args(page, size)
    org = org_id if org_id is not None else svc.principal.org_id
    await svc.scope.require_org(org)
    entries, total = await svc.audit.page(org, page, size)
    return Page([e for e in entries], total, page, size)
