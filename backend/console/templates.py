"""Templates of the organizations in a user's scope, edited piece by piece from the console.

Every change goes through ``TemplateService.upsert`` (the import's one write path): the
editor reads the template as its import document, changes one part, and writes it back, so
the console and ``openblynk import`` check and store templates the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.access.scope import Scope, ancestry
from backend.audit.services import AuditService
from backend.console.dashboards import DashboardService, Widget
from backend.console.mobile import MobileDashboardService, MobileWidget
from backend.errors import NotFoundError, ValidationError
from backend.templates.models import Datastream, Template
from backend.templates.schemas import DatastreamIn, EventIn, MetaFieldIn, TemplateIn
from backend.templates.services import TemplateService
from backend.templates.values import DatastreamPin

S = TypeVar("S", bound=msgspec.Struct)


class TemplateInfoIn(msgspec.Struct, forbid_unknown_fields=True):
    """The Info tab: everything of a template but its parts."""

    name: str
    description: str = ""
    hardware: str = "ESP32"
    connection_type: str = "WI_FI"
    heartbeat_interval: int = 45
    offline_ignore_seconds: int = 0
    gateway_enabled: bool = False
    """Blynk's "Enable for Gateway API"."""


def _convert(kind: type[msgspec.Struct], data: object, what: str) -> msgspec.Struct:
    try:
        return msgspec.convert(data, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"{what}: {exc}") from None


class TemplateEditor:
    """Templates within one principal's scope."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService) -> None:
        self.session = session
        self.scope = scope
        self.principal: Principal = scope.principal
        self.audit = audit
        self.templates = TemplateService(session)
        self.dashboards = DashboardService(session)
        self.mobile = MobileDashboardService(session)

    async def visible(self) -> list[Template]:
        """Templates of every organization in scope, by name."""
        result = await self.session.exec(
            select(Template)
            .where(col(Template.org_id).in_(sorted(await self.scope.org_ids())))
            .order_by(col(Template.name), col(Template.id))
        )
        return list(result.all())

    async def usable(self) -> list[Template]:
        """Templates a new device may use: those in scope and those of the organizations above
        the user's own (a manufacturer's templates serve its customers' sub-organizations, as
        on Blynk), by name. Which one fits a given organization ``DeviceAdmin.create`` checks."""
        orgs = await self.scope.org_ids() | set(await ancestry(self.session, self.principal.org_id))
        result = await self.session.exec(
            select(Template)
            .where(col(Template.org_id).in_(sorted(orgs)))
            .order_by(col(Template.name), col(Template.id))
        )
        return list(result.all())

    async def get(self, template_id: int) -> Template:
        """One template in scope (others are answered as missing)."""
        template = await self.session.get(Template, template_id)
        if template is None or template.org_id not in await self.scope.org_ids():
            raise NotFoundError("template not found")
        return template

    async def datastreams(self, template_id: int) -> list[Datastream]:
        """A template's datastreams, by pin."""
        return await self.templates.datastreams((await self.get(template_id)).id or 0)

    async def create(self, org_id: int | None, info: TemplateInfoIn) -> Template:
        """A new, empty template in an organization of the scope (the caller's by default)."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        spec = self._spec(info)
        if await self.templates.by_name(org, spec.name) is not None:
            raise ValidationError(f"this organization already has a template named {spec.name!r}")
        template, _ = await self.templates.upsert(org, spec)
        await self.audit.record(self.principal, org, "template.create", "template", template.id, name=template.name)
        return template

    async def update_info(self, template_id: int, info: TemplateInfoIn) -> Template:
        """Rename a template or change its settings."""
        template = await self.get(template_id)
        current = await self.templates.as_spec(template)
        wanted = self._spec(info)
        if wanted.name != template.name and await self.templates.by_name(template.org_id, wanted.name) is not None:
            raise ValidationError(f"this organization already has a template named {wanted.name!r}")
        template.name = wanted.name  # upsert finds templates by name: rename first
        self.session.add(template)
        await self.session.flush()
        return await self._write(
            template,
            msgspec.structs.replace(
                current,
                name=wanted.name,
                description=wanted.description,
                hardware=wanted.hardware,
                connection_type=wanted.connection_type,
                heartbeat_interval=wanted.heartbeat_interval,
                offline_ignore_seconds=wanted.offline_ignore_seconds,
                gateway_enabled=wanted.gateway_enabled,
            ),
            "template.update",
        )

    async def put_datastream(
        self, template_id: int, data: dict[str, object], replace_pin: int | None = None
    ) -> Template:
        """Add a datastream, or replace the one on ``replace_pin``."""
        item = _convert(DatastreamIn, data, "datastream")
        assert isinstance(item, DatastreamIn)
        return await self._edit(
            template_id,
            "datastreams",
            lambda items: _replace(
                items,
                item,
                lambda d: DatastreamPin.parse(d.pin).number == replace_pin if replace_pin is not None else False,
                clash=lambda d: DatastreamPin.parse(d.pin).number == DatastreamPin.parse(item.pin).number,
                what=f"a datastream on {item.pin.upper()}",
            ),
            "template.datastream",
        )

    async def delete_datastream(self, template_id: int, pin: int) -> Template:
        """Remove a datastream (widgets bound to it are removed from both dashboards too)."""
        template = await self._edit(
            template_id,
            "datastreams",
            lambda items: _remove(items, lambda d: DatastreamPin.parse(d.pin).number == pin, f"datastream V{pin}"),
            "template.datastream_delete",
        )
        widgets = [w for w in await self.dashboards.get(template_id) if w.pin != pin]
        datastreams = await self.templates.datastreams(template_id)
        await self.dashboards.save(self.principal, template_id, widgets, datastreams)
        mobile = [w for w in await self.mobile.get(template_id) if w.pin != pin]
        await self.mobile.save(self.principal, template_id, mobile, datastreams)
        return template

    async def put_event(self, template_id: int, data: dict[str, object]) -> Template:
        """Add an event definition, or change the one with the same code."""
        item = _convert(EventIn, data, "event")
        assert isinstance(item, EventIn)

        def change(items: list[EventIn]) -> list[EventIn]:
            if "notify" not in data:  # a form without the notification settings keeps them
                item.notify = next((e.notify for e in items if e.code == item.code), None)
            return _replace(items, item, lambda e: e.code == item.code, clash=lambda e: False, what="")

        return await self._edit(template_id, "events", change, "template.event")

    async def delete_event(self, template_id: int, code: str) -> Template:
        """Remove an event definition (logged events stay on the timelines)."""
        return await self._edit(
            template_id,
            "events",
            lambda items: _remove(items, lambda e: e.code == code, f"event {code!r}"),
            "template.event_delete",
        )

    async def put_meta_field(self, template_id: int, data: dict[str, object]) -> Template:
        """Add a custom metadata field, or change the one with the same name."""
        item = _convert(MetaFieldIn, data, "metadata field")
        assert isinstance(item, MetaFieldIn)
        return await self._edit(
            template_id,
            "metadata",
            lambda items: _replace(items, item, lambda m: m.name == item.name, clash=lambda m: False, what=""),
            "template.metadata",
        )

    async def delete_meta_field(self, template_id: int, name: str) -> Template:
        """Remove a custom metadata field."""
        return await self._edit(
            template_id,
            "metadata",
            lambda items: _remove(items, lambda m: m.name == name, f"metadata field {name!r}"),
            "template.metadata_delete",
        )

    async def dashboard(self, template_id: int) -> list[Widget]:
        """The template's web dashboard."""
        return await self.dashboards.get((await self.get(template_id)).id or 0)

    async def save_dashboard(self, template_id: int, widgets: list[Widget]) -> list[Widget]:
        """Store the web dashboard every device of the template shows."""
        template = await self.get(template_id)
        saved = await self.dashboards.save(
            self.principal, template_id, widgets, await self.templates.datastreams(template_id)
        )
        await self.audit.record(
            self.principal, template.org_id, "template.dashboard", "template", template_id, widgets=len(saved)
        )
        return saved

    async def mobile_dashboard(self, template_id: int) -> list[MobileWidget]:
        """The template's mobile dashboard, in order."""
        return await self.mobile.get((await self.get(template_id)).id or 0)

    async def save_mobile_dashboard(self, template_id: int, widgets: list[MobileWidget]) -> list[MobileWidget]:
        """Store the mobile dashboard the app shows for every device of the template."""
        template = await self.get(template_id)
        saved = await self.mobile.save(
            self.principal, template_id, widgets, await self.templates.datastreams(template_id)
        )
        await self.audit.record(
            self.principal, template.org_id, "template.mobile_dashboard", "template", template_id, widgets=len(saved)
        )
        return saved

    async def _edit(
        self, template_id: int, part: str, change: Callable[[list[Any]], list[Any]], action: str
    ) -> Template:
        template = await self.get(template_id)
        current = await self.templates.as_spec(template)
        updated = msgspec.structs.replace(current, **{part: change(list(getattr(current, part)))})
        return await self._write(template, updated, action)

    async def _write(self, template: Template, spec: TemplateIn, action: str) -> Template:
        try:
            spec = msgspec.convert(msgspec.to_builtins(spec), TemplateIn)  # re-check every constraint
        except msgspec.ValidationError as exc:
            raise ValidationError(f"template: {exc}") from None
        saved, _ = await self.templates.upsert(template.org_id, spec)
        await self.audit.record(self.principal, template.org_id, action, "template", template.id)
        return saved

    @staticmethod
    def _spec(info: TemplateInfoIn) -> TemplateIn:
        data = msgspec.to_builtins(info)
        data["name"] = str(data["name"]).strip()
        try:
            return msgspec.convert(data, TemplateIn)
        except msgspec.ValidationError as exc:
            raise ValidationError(f"template: {exc}") from None


def _replace(items: list[S], item: S, same: Callable[[Any], bool], clash: Callable[[Any], bool], what: str) -> list[S]:
    """``items`` with ``item`` in place of the one ``same`` finds, or appended; refuses a clash."""
    kept = [i for i in items if not same(i)]
    if any(clash(i) for i in kept):
        raise ValidationError(f"the template already has {what}")
    return [*kept, item] if len(kept) == len(items) else [item if same(i) else i for i in items]


def _remove(items: list[S], match: Callable[[Any], bool], what: str) -> list[S]:
    kept = [i for i in items if not match(i)]
    if len(kept) == len(items):
        raise NotFoundError(f"{what} not found")
    return kept
