"""The webhooks of a request (the ``webhooks`` dependency), on the request's transaction,
scope and audit log, with the process's sender for "send test"."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.settings import Settings
from backend.webhooks.delivery import WebhookSender
from backend.webhooks.service import WebhookService


def provide_webhooks(
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    settings: NamedDependency[Settings],
    webhook_sender: NamedDependency[WebhookSender],
) -> WebhookService:
    """``webhooks``: the caller's webhooks and their delivery log."""
    return WebhookService(db_session, org_scope, audit, webhook_sender, settings.string_max_bytes)


def webhooks_dependencies() -> dict[str, Provide]:
    """What the webhooks area provides to the routes that use it."""
    return {"webhooks": Provide(provide_webhooks, sync_to_thread=False)}
