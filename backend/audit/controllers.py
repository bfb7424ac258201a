"""The audit log over HTTP: ``GET /api/audit?org_id=&page=&size=``."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from backend.access.guards import requires
from backend.access.paging import Page, page_args
from backend.access.permissions import Permission, Principal
from backend.access.scope import Scope
from backend.audit.schemas import AuditOut
from backend.audit.services import AuditService


@get("/audit", guards=[requires(Permission.AUDIT_VIEW)])
async def audit_log(
    principal: NamedDependency[Principal],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    org_id: FromQuery[int | None] = None,
    page: FromQuery[int] = 0,
    size: FromQuery[int] = 50,
) -> Page[AuditOut]:
    """Changes in one organization of the caller's scope (their own by default), newest first."""
    page, size = page_args(page, size)
    org = org_id if org_id is not None else principal.org_id
    await org_scope.require_org(org)
    entries, total = await audit.page(org, page, size)
    return Page([e for e in entries], total, page, size)
