"""The automations of a request (the ``automations`` dependency), on the request's transaction,
scope and audit log."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.automations.service import AutomationService, Limits
from backend.settings import Settings


def provide_automations(
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    settings: NamedDependency[Settings],
) -> AutomationService:
    """``automations``: the caller's automations and their log."""
    limits = Limits(settings.automations_per_org, settings.actions_per_automation, settings.string_max_bytes)
    return AutomationService(db_session, org_scope, audit, limits)


def automations_dependencies() -> dict[str, Provide]:
    """What the automations area provides to the routes that use it."""
    return {"automations": Provide(provide_automations, sync_to_thread=False)}
