"""The console's JSON routes of webhooks, under ``/api/console/webhooks`` (thin: one service
call each; the guards say who may call them, the session middleware checks CSRF)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK

from backend.access.guards import requires
from backend.access.paging import Page, page_args
from backend.access.permissions import Permission as P
from backend.webhooks.schemas import DeliveryOut, TestOut, WebhookOut, parse_webhook
from backend.webhooks.service import WebhookService

Webhooks = NamedDependency[WebhookService]
VIEW = requires(P.WEBHOOKS_VIEW)
EDIT = requires(P.WEBHOOKS_EDIT)


class ConsoleWebhookController(Controller):
    """Webhooks of the caller's scope, their tests and their delivery log."""

    path = "/webhooks"

    @get("/", guards=[VIEW])
    async def list_webhooks(
        self,
        webhooks: Webhooks,
        org_id: FromQuery[int | None] = None,
        page: FromQuery[int] = 0,
        size: FromQuery[int] = 50,
    ) -> Page[WebhookOut]:
        """Webhooks of one organization (``org_id``) or of the whole scope, by name."""
        page, size = page_args(page, size)
        return Page(*await webhooks.listing(org_id, page, size), page, size)

    @post("/", guards=[EDIT])
    async def create_webhook(
        self, request: Request[Any, Any, Any], webhooks: Webhooks, org_id: FromQuery[int | None] = None
    ) -> WebhookOut:
        """A new webhook of ``org_id`` (the caller's organization by default), with its secret."""
        return await webhooks.create(org_id, parse_webhook(await request.body()))

    @get("/{webhook_id:int}", guards=[VIEW])
    async def get_webhook(self, webhook_id: FromPath[int], webhooks: Webhooks) -> WebhookOut:
        """One webhook."""
        return await webhooks.get(webhook_id)

    @put("/{webhook_id:int}", guards=[EDIT])
    async def update_webhook(
        self, webhook_id: FromPath[int], request: Request[Any, Any, Any], webhooks: Webhooks
    ) -> WebhookOut:
        """Replace a webhook (its secret stays; saving it enabled clears its failures)."""
        return await webhooks.update(webhook_id, parse_webhook(await request.body()))

    @delete("/{webhook_id:int}", guards=[EDIT])
    async def delete_webhook(self, webhook_id: FromPath[int], webhooks: Webhooks) -> None:
        """Delete a webhook and its delivery log."""
        await webhooks.delete(webhook_id)

    @post("/{webhook_id:int}/secret", guards=[EDIT], status_code=HTTP_200_OK)
    async def rotate_secret(self, webhook_id: FromPath[int], webhooks: Webhooks) -> WebhookOut:
        """A new signing secret."""
        return await webhooks.rotate_secret(webhook_id)

    @post("/{webhook_id:int}/test", guards=[EDIT], status_code=HTTP_200_OK)
    async def send_test(self, webhook_id: FromPath[int], webhooks: Webhooks) -> TestOut:
        """Send the webhook now with sample values; how it went (it is in the log too)."""
        return await webhooks.test(webhook_id)

    @get("/{webhook_id:int}/deliveries", guards=[VIEW])
    async def deliveries(
        self, webhook_id: FromPath[int], webhooks: Webhooks, page: FromQuery[int] = 0, size: FromQuery[int] = 50
    ) -> Page[DeliveryOut]:
        """The delivery log, newest first."""
        page, size = page_args(page, size)
        return Page(*await webhooks.deliveries(webhook_id, page, size), page, size)
