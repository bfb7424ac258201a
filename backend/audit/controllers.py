"""The audit log over HTTP: ``GET /api/audit?org_id=&user=&action=&since=&until=&page=&size=``
and the same entries as CSV, streamed, at ``GET /api/audit/export``."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Stream

from backend.access.guards import requires
from backend.access.paging import Page, page_args
from backend.access.permissions import Permission, Principal
from backend.access.scope import Scope
from backend.audit.schemas import AuditOut
from backend.audit.services import AuditFilter, AuditService, stream_csv
from backend.db.engine import Database
from backend.errors import ValidationError


def _instant(text: str, name: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or None for an empty parameter."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def audit_filter(user: str, action: str, since: str, until: str) -> AuditFilter:
    """The filter the query parameters name (the page and the API read the same ones)."""
    return AuditFilter(user.strip(), action.strip(), _instant(since, "since"), _instant(until, "until"))


@get("/audit", guards=[requires(Permission.AUDIT_VIEW)])
async def audit_log(
    principal: NamedDependency[Principal],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    org_id: FromQuery[int | None] = None,
    user: FromQuery[str] = "",
    action: FromQuery[str] = "",
    since: FromQuery[str] = "",
    until: FromQuery[str] = "",
    page: FromQuery[int] = 0,
    size: FromQuery[int] = 50,
) -> Page[AuditOut]:
    """Changes in one organization of the caller's scope (their own by default), newest first;
    ``user`` matches part of the e-mail, ``action`` the start of the action, ``[since, until)``."""
    page, size = page_args(page, size)
    wanted = audit_filter(user, action, since, until)
    org = org_id if org_id is not None else principal.org_id
    await org_scope.require_org(org)
    entries, total = await audit.page(org, page, size, wanted)
    return Page([e for e in entries], total, page, size)


@get("/audit/export", guards=[requires(Permission.AUDIT_VIEW)])
async def audit_export(
    principal: NamedDependency[Principal],
    org_scope: NamedDependency[Scope],
    db: NamedDependency[Database],
    org_id: FromQuery[int | None] = None,
    user: FromQuery[str] = "",
    action: FromQuery[str] = "",
    since: FromQuery[str] = "",
    until: FromQuery[str] = "",
) -> Stream:
    """The entries the same filter finds, oldest first, as CSV streamed while it is read."""
    wanted = audit_filter(user, action, since, until)
    org = org_id if org_id is not None else principal.org_id
    await org_scope.require_org(org)
    return Stream(
        stream_csv(db.pool, org, wanted),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit_org_{org}.csv"', "Cache-Control": "no-store"},
    )
