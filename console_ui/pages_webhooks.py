"""Webhook pages (Blynk's Settings → Developers → Webhooks): the list, the editor of one
webhook with its "send test" button and secret, and its delivery log. Changes go through
``/api/console/webhooks``; the editor's script (``static/webhooks.js``) shows the fields of the
chosen trigger, sends the form as JSON and shows a test's outcome, building every element with
text only."""

from __future__ import annotations

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template as Page

from backend.access.guards import requires
from backend.access.permissions import Permission as P
from backend.access.permissions import Principal
from backend.orgs.tree import OrgTreeService
from backend.webhooks.requests import MAX_BODY_BYTES
from backend.webhooks.service import WebhookService
from console_ui.render import page

LIST_SIZE = 1000
LOG_SIZE = 50
TRIGGERS = {
    "template_datastream": "Template datastream update",
    "device_datastream": "Device datastream update",
    "first_connection": "First-time device connection",
    "device_activated": "New device activated",
    "user_added": "New user added",
    "manual": "Only by automations and tests",
}
"""The trigger kinds, as the pages name them."""


@get("/webhooks", guards=[requires(P.WEBHOOKS_VIEW)])
async def webhooks_page(
    request: Request,  # type: ignore[type-arg]
    webhooks: NamedDependency[WebhookService],
    org_tree: NamedDependency[OrgTreeService],
) -> Page:
    """Webhooks of the organizations in scope, by name."""
    found, _total = await webhooks.listing(None, 0, LIST_SIZE)
    return page(request, "webhooks.html", webhooks=found, triggers=TRIGGERS, orgs=await org_tree.list())


@get("/webhooks/new", guards=[requires(P.WEBHOOKS_EDIT)])
async def new_webhook_page(
    request: Request,  # type: ignore[type-arg]
    webhooks: NamedDependency[WebhookService],
    org_tree: NamedDependency[OrgTreeService],
    org_id: FromQuery[int | None] = None,
) -> Page:
    """The editor of a new webhook of ``org_id`` (the caller's organization by default)."""
    choices = await webhooks.choices(org_id)
    return page(
        request,
        "webhook.html",
        webhook=None,
        choices=choices,
        triggers=TRIGGERS,
        editable=True,
        deliveries=[],
        orgs=await org_tree.list(),
        max_body=MAX_BODY_BYTES,
    )


@get("/webhooks/{webhook_id:int}", guards=[requires(P.WEBHOOKS_VIEW)])
async def webhook_page(
    request: Request,  # type: ignore[type-arg]
    webhook_id: FromPath[int],
    webhooks: NamedDependency[WebhookService],
    principal: NamedDependency[Principal],
) -> Page:
    """One webhook in the editor (read only without ``webhooks.edit``) and its latest deliveries."""
    webhook = await webhooks.get(webhook_id)
    deliveries, total = await webhooks.deliveries(webhook_id, 0, LOG_SIZE)
    return page(
        request,
        "webhook.html",
        webhook=webhook,
        choices=await webhooks.choices(webhook.org_id),
        triggers=TRIGGERS,
        editable=principal.has(P.WEBHOOKS_EDIT),
        deliveries=deliveries,
        total=total,
        orgs=[],
        max_body=MAX_BODY_BYTES,
    )


ROUTES = [webhooks_page, new_webhook_page, webhook_page]
