"""Import and export of templates (with datastreams, events, metadata fields, web and mobile
dashboards) and devices (the ``openblynk import``/``export`` commands).

Import is idempotent: a template with the same name is updated in place (datastreams matched by
pin, events by code, the web and mobile dashboards replaced and checked as the console's
editors check them),
a device with the same name is kept (and given the document's token and tags if they are set),
so running the same file twice changes nothing. An export imported into an empty installation
exports again to the same document.
"""

from __future__ import annotations

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.console.dashboards import DashboardIn, DashboardService
from backend.console.mobile import MobileDashboardIn, MobileDashboardService
from backend.devices.services import DeviceService
from backend.devices.tags import check_tags, store_tags, tags_of
from backend.errors import NotFoundError, ValidationError
from backend.security import AuthToken, Secrets
from backend.templates.models import Datastream, Template
from backend.templates.services import TemplateService
from backend.transfer.schemas import DeviceIn, DeviceOut, Document, ImportResult, TemplateDoc


class TransferService:
    """Import and export of one organization's templates and devices."""

    def __init__(self, session: AsyncSession, secrets: Secrets) -> None:
        self.session = session
        self.templates = TemplateService(session)
        self.devices = DeviceService(session, secrets)
        self.dashboards = DashboardService(session)
        self.mobile = MobileDashboardService(session)

    async def import_document(self, org_id: int, doc: Document) -> ImportResult:
        """Create or update everything in ``doc``; return the devices with their tokens."""
        by_name: dict[str, Template] = {}
        for spec in doc.templates:
            upserted, _ = await self.templates.upsert(org_id, spec)
            await self._import_dashboard(upserted, spec)
            by_name[upserted.name] = upserted
        out = []
        for item in doc.devices:
            template = by_name.get(item.template) or await self.templates.by_name(org_id, item.template)
            if template is None or template.id is None:
                raise NotFoundError(f"device {item.name!r}: no template named {item.template!r}")
            out.append(await self._import_device(org_id, template, item))
        return ImportResult(devices=out)

    async def _import_dashboard(self, template: Template, spec: TemplateDoc) -> None:
        """Replace the web dashboard with the document's; without one, keep the current widgets
        but those whose datastream the document removed (as the console does)."""
        assert template.id is not None
        datastreams = await self.templates.datastreams(template.id)
        if spec.web_dashboard is not None:
            widgets = spec.web_dashboard.widgets
        else:
            current = await self.dashboards.get(template.id)
            pins = {d.pin for d in datastreams}
            widgets = [w for w in current if w.pin in pins]
            if widgets == current:
                await self._import_mobile(template, spec, datastreams)
                return
        try:
            await self.dashboards.save(None, template.id, widgets, datastreams)
        except ValidationError as exc:
            raise ValidationError(f"template {template.name!r}: web dashboard: {exc.message}") from None
        await self._import_mobile(template, spec, datastreams)

    async def _import_mobile(self, template: Template, spec: TemplateDoc, datastreams: list[Datastream]) -> None:
        """The same for the mobile dashboard."""
        assert template.id is not None
        if spec.mobile_dashboard is not None:
            widgets = spec.mobile_dashboard.widgets
        else:
            current = await self.mobile.get(template.id)
            pins = {d.pin for d in datastreams}
            widgets = [w for w in current if w.pin in pins]
            if widgets == current:
                return
        try:
            await self.mobile.save(None, template.id, widgets, datastreams)
        except ValidationError as exc:
            raise ValidationError(f"template {template.name!r}: mobile dashboard: {exc.message}") from None

    async def _import_device(self, org_id: int, template: Template, item: DeviceIn) -> DeviceOut:
        assert template.id is not None
        wanted = AuthToken(item.token) if item.token else None
        device = await self.devices.by_name(org_id, item.name)
        created = device is None
        if device is None:
            device, token = await self.devices.create(org_id, template.id, item.name, wanted)
        else:
            if device.template_id != template.id:
                device.template_id = template.id
                await self.devices.moved(device)
            token = await self.devices.set_token(device, wanted) if wanted else self.devices.token_of(device)
        assert device.id is not None
        if item.tags is not None:
            try:
                tags = check_tags(item.tags)
            except ValidationError as exc:
                raise ValidationError(f"device {item.name!r}: {exc.message}") from None
            await store_tags(self.session, device.id, tags)
        return DeviceOut(
            name=device.name,
            id=device.id,
            token=token.value,
            template=template.name,
            template_id=template.public_id,
            created=created,
        )

    async def export_document(self, org_id: int) -> Document:
        """Everything of the organization, in the import format (tokens included)."""
        templates = await self.templates.list_templates(org_id)
        names = {t.id: t.name for t in templates}
        out_templates = [await self._export_template(t) for t in templates]
        listed = await self.devices.list(org_id)
        tags = await tags_of(self.session, [d.id for d in listed if d.id is not None])
        devices = [
            DeviceIn(
                name=d.name,
                template=names[d.template_id],
                token=self.devices.token_of(d).value,
                tags=tags.get(d.id) if d.id is not None else None,
            )
            for d in listed
        ]
        return Document(templates=out_templates, devices=devices)

    async def _export_template(self, template: Template) -> TemplateDoc:
        assert template.id is not None
        spec = await self.templates.as_spec(template)
        widgets = await self.dashboards.get(template.id)
        mobile = await self.mobile.get(template.id)
        return TemplateDoc(
            **msgspec.structs.asdict(spec),
            web_dashboard=DashboardIn(widgets=widgets),
            mobile_dashboard=MobileDashboardIn(widgets=mobile),
        )
