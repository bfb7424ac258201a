"""Webhooks within one principal's scope: make, change, delete, test, and read the delivery log.

A webhook belongs to one organization of the caller's scope; one outside it is answered as
missing (``NotFoundError``). What it names must be within its organization's reach: a
template the organization may use (its own or one above it), a device of the organization or
below it that the caller sees, a pin the template has. The request is checked as written
(:func:`backend.webhooks.requests.check`: method, URL, headers, the 5 KB bound of the body).
Every change is audited in the same transaction and sends a ``webhook:<id>`` change notice,
so every process's triggers reload. Saving a webhook enabled clears its failures in a row.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission, Principal
from backend.access.scope import Scope, ancestry, subtree
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_all, fetch_one, fetch_unique
from backend.errors import NotFoundError, ValidationError
from backend.webhooks.delivery import WebhookSender
from backend.webhooks.requests import SAMPLE, BodyKind, RequestSpec, check, placeholder_sizes
from backend.webhooks.schemas import DeliveryOut, TestOut, WebhookIn, WebhookOut
from backend.webhooks.signing import new_secret

_TAKEN = "the organization already has a webhook of this name"
WEBHOOKS_PER_ORG = 100
"""The most webhooks one organization may have."""
CHOICES_LIMIT = 1000
"""The most devices the editor offers to pick from."""
_COLUMNS = (
    "id, org_id, name, enabled, trigger_kind, template_id, device_id, pin, method, url, headers, body_kind, "
    "body_template, secret, failures, disabled_reason, created_at, updated_at"
)
_WRITE = (
    "name = :name, enabled = :enabled, trigger_kind = :trigger, template_id = :template, device_id = :device, "
    "pin = :pin, method = :method, url = :url, headers = CAST(:headers AS jsonb), body_kind = :kind, "
    "body_template = :body"
)


def webhook_out(row: Any, secret: str | None) -> WebhookOut:
    """The wire form of a ``webhook`` row, with its secret (opened) or none."""
    return WebhookOut(
        id=int(row["id"]),
        org_id=int(row["org_id"]),
        name=row["name"],
        enabled=bool(row["enabled"]),
        trigger=row["trigger_kind"],
        template_id=row["template_id"],
        device_id=row["device_id"],
        pin=row["pin"],
        method=row["method"],
        url=row["url"],
        headers=dict(row["headers"]),
        body_kind=row["body_kind"],
        body=row["body_template"],
        secret=secret,
        failures=int(row["failures"]),
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class WebhookService:
    """Webhooks of the organizations one principal sees."""

    def __init__(
        self, session: AsyncSession, scope: Scope, audit: AuditService, sender: WebhookSender, string_max_bytes: int
    ) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit
        self.sender = sender
        self.sizes = placeholder_sizes(string_max_bytes)

    def _out(self, row: Any, shown: bool | None = None) -> WebhookOut:
        """``row`` on the wire; its secret opened for those who may edit webhooks."""
        show = self.principal.has(Permission.WEBHOOKS_EDIT) if shown is None else shown
        return webhook_out(row, self.sender.box.open(row["secret"]) if show else None)

    async def listing(self, org_id: int | None, page: int, size: int) -> tuple[list[WebhookOut], int]:
        """Webhooks of one organization of the scope, or of the whole scope, by name."""
        if org_id is not None:
            await self.scope.require_org(org_id)
        orgs = [org_id] if org_id is not None else sorted(await self.scope.org_ids())
        rows = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM webhook WHERE org_id = ANY(:orgs) "
            "ORDER BY lower(name), id LIMIT :size OFFSET :offset",
            orgs=orgs,
            size=size,
            offset=page * size,
        )
        total = int(rows[0]["total"]) if rows else await self._count(orgs)
        return [self._out(r) for r in rows], total

    async def get(self, webhook_id: int) -> WebhookOut:
        """One webhook of the scope."""
        return self._out(await self._row(webhook_id))

    async def create(self, org_id: int | None, data: WebhookIn) -> WebhookOut:
        """A new webhook of ``org_id`` (the caller's organization by default), with a new secret."""
        org = self.principal.org_id if org_id is None else org_id
        await self.scope.require_org(org)
        if await self._count([org]) >= WEBHOOKS_PER_ORG:
            raise ValidationError(f"the organization has the most webhooks it may have ({WEBHOOKS_PER_ORG})")
        await self._check(org, data)
        row = await fetch_unique(
            self.session,
            "INSERT INTO webhook (org_id, name, enabled, trigger_kind, template_id, device_id, pin, method, url, "
            "headers, body_kind, body_template, secret) VALUES (:org, :name, :enabled, :trigger, :template, "
            ":device, :pin, :method, :url, CAST(:headers AS jsonb), :kind, :body, :secret) "
            f"RETURNING {_COLUMNS}",
            _TAKEN,
            org=org,
            secret=self.sender.box.seal(new_secret()),
            **_columns(data),
        )
        assert row is not None
        await self._changed(int(row["id"]), org, "webhook.create", name=data.name)
        return self._out(row, True)

    async def update(self, webhook_id: int, data: WebhookIn) -> WebhookOut:
        """Replace a webhook (its secret stays); saved enabled, its failures start again at 0."""
        current = await self._row(webhook_id)
        await self._check(int(current["org_id"]), data)
        row = await fetch_unique(
            self.session,
            f"UPDATE webhook SET {_WRITE}, updated_at = now(), "
            "failures = CASE WHEN :enabled THEN 0 ELSE failures END, "
            "disabled_reason = CASE WHEN :enabled THEN NULL ELSE disabled_reason END "
            f"WHERE id = :id RETURNING {_COLUMNS}",
            _TAKEN,
            id=webhook_id,
            **_columns(data),
        )
        assert row is not None
        await self._changed(webhook_id, int(row["org_id"]), "webhook.update", name=data.name)
        return self._out(row, True)

    async def delete(self, webhook_id: int) -> None:
        """Delete a webhook and its delivery log."""
        current = await self._row(webhook_id)
        await execute(self.session, "DELETE FROM webhook WHERE id = :id", id=webhook_id)
        await self._changed(webhook_id, int(current["org_id"]), "webhook.delete", name=current["name"])

    async def rotate_secret(self, webhook_id: int) -> WebhookOut:
        """Give a webhook a new secret (the old one stops working at once)."""
        current = await self._row(webhook_id)
        row = await fetch_one(
            self.session,
            f"UPDATE webhook SET secret = :secret, updated_at = now() WHERE id = :id RETURNING {_COLUMNS}",
            id=webhook_id,
            secret=self.sender.box.seal(new_secret()),
        )
        assert row is not None
        await self.audit.record(self.principal, int(current["org_id"]), "webhook.secret_rotate", "webhook", webhook_id)
        return self._out(row, True)

    async def deliveries(self, webhook_id: int, page: int, size: int) -> tuple[list[DeliveryOut], int]:
        """A webhook's delivery log, newest first."""
        await self._row(webhook_id)
        rows = await fetch_all(
            self.session,
            "SELECT id, at, trigger, request, ok, refused, status, response_head, error, attempt, duration_ms, "
            "count(*) OVER () AS total FROM webhook_delivery WHERE webhook_id = :id "
            "ORDER BY id DESC LIMIT :size OFFSET :offset",
            id=webhook_id,
            size=size,
            offset=page * size,
        )
        entries = [DeliveryOut(**{k: v for k, v in r.items() if k != "total"}) for r in rows]
        if rows:
            return entries, int(rows[0]["total"])
        count = await fetch_one(
            self.session, "SELECT count(*) AS n FROM webhook_delivery WHERE webhook_id = :id", id=webhook_id
        )
        return entries, int(count["n"]) if count else 0

    async def test(self, webhook_id: int) -> TestOut:
        """Send the webhook now with sample values (also when disabled); how it went. The
        delivery is logged like any other; a failed test counts no failure."""
        current = await self._row(webhook_id)
        delivery = await self.sender.fire(
            webhook_id, int(current["org_id"]), SAMPLE, trigger=f"test by {self.principal.email}", test=True
        )
        return TestOut(
            ok=delivery.ok,
            refused=delivery.refused,
            status=delivery.status,
            error=delivery.error,
            attempts=delivery.attempts,
            response_head=delivery.response_head[:2048],
            duration_ms=delivery.duration_ms,
        )

    async def choices(self, org_id: int | None) -> dict[str, Any]:
        """What the editor offers for a webhook of ``org_id`` (the caller's by default): the
        templates the organization may use with their datastreams, and its devices (and those
        below it that the caller sees)."""
        org = self.principal.org_id if org_id is None else org_id
        await self.scope.require_org(org)
        templates = await fetch_all(
            self.session,
            "SELECT id, name FROM template WHERE org_id = ANY(:orgs) ORDER BY lower(name), id",
            orgs=await ancestry(self.session, org),
        )
        streams = await fetch_all(
            self.session,
            "SELECT template_id, pin, name FROM datastream WHERE template_id = ANY(:ids) ORDER BY pin",
            ids=[int(t["id"]) for t in templates],
        )
        reach = sorted(frozenset(await subtree(self.session, org)) & await self.scope.org_ids())
        devices = await fetch_all(
            self.session,
            "SELECT id, name, template_id FROM device WHERE org_id = ANY(:orgs) ORDER BY lower(name), id LIMIT :n",
            orgs=reach,
            n=CHOICES_LIMIT,
        )
        return {
            "org_id": org,
            "templates": [
                {
                    "id": int(t["id"]),
                    "name": t["name"],
                    "datastreams": [
                        {"pin": int(d["pin"]), "name": d["name"]} for d in streams if d["template_id"] == t["id"]
                    ],
                }
                for t in templates
            ],
            "devices": [{"id": int(d["id"]), "name": d["name"], "template_id": int(d["template_id"])} for d in devices],
        }

    # -- checks -------------------------------------------------------------------------------
    async def _check(self, org: int, data: WebhookIn) -> None:
        check(RequestSpec(data.method, data.url, data.headers, BodyKind(data.body_kind), data.body), self.sizes)
        template = data.template_id
        if data.template_id is not None:
            found = await fetch_one(
                self.session,
                "SELECT id FROM template WHERE id = :id AND org_id = ANY(:orgs)",
                id=data.template_id,
                orgs=await ancestry(self.session, org),
            )
            if found is None:
                raise ValidationError(f"template {data.template_id} is not one the organization may use")
        if data.device_id is not None:
            reach = sorted(frozenset(await subtree(self.session, org)) & await self.scope.org_ids())
            device = await fetch_one(
                self.session,
                "SELECT template_id FROM device WHERE id = :id AND org_id = ANY(:orgs)",
                id=data.device_id,
                orgs=reach,
            )
            if device is None:
                raise ValidationError(f"device {data.device_id} is not one of the organization's")
            template = int(device["template_id"])
        if data.pin is not None and template is not None:
            pin = await fetch_one(
                self.session,
                "SELECT 1 AS ok FROM datastream WHERE template_id = :t AND pin = :pin",
                t=template,
                pin=data.pin,
            )
            if pin is None:
                raise ValidationError(f"the template has no datastream on V{data.pin}")

    async def _row(self, webhook_id: int) -> Any:
        row = await fetch_one(
            self.session,
            f"SELECT {_COLUMNS} FROM webhook WHERE id = :id AND org_id = ANY(:orgs)",
            id=webhook_id,
            orgs=sorted(await self.scope.org_ids()),
        )
        if row is None:
            raise NotFoundError("webhook not found")
        return row

    async def _count(self, orgs: list[int]) -> int:
        row = await fetch_one(self.session, "SELECT count(*) AS n FROM webhook WHERE org_id = ANY(:orgs)", orgs=orgs)
        return int(row["n"]) if row else 0

    async def _changed(self, webhook_id: int, org: int, action: str, **details: Any) -> None:
        await self.audit.record(self.principal, org, action, "webhook", webhook_id, **details)
        await notify(self.session, Change("webhook", webhook_id))


def _columns(data: WebhookIn) -> dict[str, Any]:
    return {
        "name": data.name,
        "enabled": data.enabled,
        "trigger": data.trigger,
        "template": data.template_id,
        "device": data.device_id,
        "pin": data.pin,
        "method": data.method,
        "url": data.url,
        "headers": json.dumps(data.headers),
        "kind": data.body_kind,
        "body": data.body,
    }
