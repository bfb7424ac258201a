"""The audit log of a request, as a dependency."""

from __future__ import annotations

from litestar.di import NamedDependency
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.audit.services import AuditService


def provide_audit(db_session: NamedDependency[AsyncSession]) -> AuditService:
    """``audit``: the request's audit log, written in its transaction."""
    return AuditService(db_session)
