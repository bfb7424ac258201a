"""Templates, datastreams, events and metadata fields: creation, update and lookup."""

from __future__ import annotations

import secrets
import string

import msgspec
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.changes import Change, notify
from backend.errors import ValidationError
from backend.templates.meta import FIRST_CUSTOM_ID, SYSTEM_NAMES
from backend.templates.models import Datastream, EventDef, MetaField, Template
from backend.templates.schemas import DatastreamIn, EventIn, EventNotify, MetaFieldIn, TemplateIn
from backend.templates.values import DatastreamPin, DatastreamSpec, DatastreamType

_ALPHABET = string.ascii_letters + string.digits


def new_public_id() -> str:
    """A template id as Blynk shows it: ``TMPL`` + 8 letters or digits."""
    return "TMPL" + "".join(secrets.choice(_ALPHABET) for _ in range(8))


def spec_of(ds: Datastream) -> DatastreamSpec:
    """The value-checking view of a datastream row."""
    return DatastreamSpec(
        pin=ds.pin,
        name=ds.name,
        type=DatastreamType(ds.type),
        min=ds.min,
        max=ds.max,
        default_value=ds.default_value,
        sync=ds.sync,
        save_raw=ds.save_raw,
        template_id=ds.template_id,
    )


class TemplateService:
    """Operations on the templates of organizations."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_name(self, org_id: int, name: str) -> Template | None:
        """The template called ``name`` in the organization, if any."""
        result = await self.session.exec(select(Template).where(Template.org_id == org_id, Template.name == name))
        return result.first()

    async def list_templates(self, org_id: int) -> list[Template]:
        """Every template of the organization, by name."""
        result = await self.session.exec(select(Template).where(Template.org_id == org_id).order_by(Template.name))
        return list(result.all())

    async def datastreams(self, template_id: int) -> list[Datastream]:
        """The datastreams of a template, by pin."""
        result = await self.session.exec(
            select(Datastream).where(Datastream.template_id == template_id).order_by(col(Datastream.pin))
        )
        return list(result.all())

    async def events(self, template_id: int) -> list[EventDef]:
        """The event definitions of a template, by code."""
        result = await self.session.exec(
            select(EventDef).where(EventDef.template_id == template_id).order_by(EventDef.code)
        )
        return list(result.all())

    async def meta_fields(self, template_id: int) -> list[MetaField]:
        """The custom metadata fields of a template, by field id."""
        result = await self.session.exec(
            select(MetaField).where(MetaField.template_id == template_id).order_by(col(MetaField.field_id))
        )
        return list(result.all())

    async def as_spec(self, template: Template) -> TemplateIn:
        """The template as its import document (what :meth:`upsert` takes back)."""
        assert template.id is not None
        datastreams = [
            DatastreamIn(
                pin=f"V{d.pin}",
                name=d.name,
                type=d.type,  # type: ignore[arg-type]
                alias=d.alias,
                min=d.min,
                max=d.max,
                default=d.default_value,
                units=d.units,
                decimals=d.decimals,
                save_raw=d.save_raw,
                sync=d.sync,
                enum_values=d.enum_values,
                wait_confirmation=d.wait_confirmation,
            )
            for d in await self.datastreams(template.id)
        ]
        events = [
            EventIn(
                code=e.code,
                name=e.name,
                type=e.type,  # type: ignore[arg-type]
                description=e.description,
                notify=None if e.notify is None else msgspec.convert(e.notify, EventNotify),
            )
            for e in await self.events(template.id)
        ]
        metadata = [
            MetaFieldIn(name=m.name, type=m.type, default=m.default_value, id=m.field_id)  # type: ignore[arg-type]
            for m in await self.meta_fields(template.id)
        ]
        return TemplateIn(
            name=template.name,
            id=template.public_id,
            description=template.description,
            hardware=template.hardware,
            connection_type=template.connection_type,
            heartbeat_interval=template.heartbeat_interval,
            offline_ignore_seconds=template.offline_ignore_seconds,
            gateway_enabled=template.gateway_enabled,
            raw_retention_days=template.raw_retention_days,
            rollup_retention_days=template.rollup_retention_days,
            datastreams=datastreams,
            events=events,
            metadata=metadata,
        )

    async def upsert(self, org_id: int, spec: TemplateIn) -> tuple[Template, bool]:
        """Create the template or update the one with the same name; True if created."""
        _check_unique(spec)
        template = await self.by_name(org_id, spec.name)
        created = template is None
        if template is None:
            template = Template(public_id=spec.id or new_public_id(), org_id=org_id, name=spec.name)
        template.description = spec.description
        template.hardware = spec.hardware
        template.connection_type = spec.connection_type
        template.heartbeat_interval = spec.heartbeat_interval
        template.offline_ignore_seconds = spec.offline_ignore_seconds
        template.gateway_enabled = spec.gateway_enabled
        template.raw_retention_days = spec.raw_retention_days
        template.rollup_retention_days = spec.rollup_retention_days
        self.session.add(template)
        await self.session.flush()
        assert template.id is not None
        await self._sync_datastreams(template.id, spec.datastreams)
        await self._sync_events(template.id, spec)
        await self._sync_meta_fields(template.id, spec.metadata)
        if not created:
            await notify(self.session, Change("template", template.id))
        return template, created

    async def _sync_datastreams(self, template_id: int, wanted: list[DatastreamIn]) -> None:
        existing = {ds.pin: ds for ds in await self.datastreams(template_id)}
        wanted_pins = {DatastreamPin.parse(d.pin).number for d in wanted}
        for pin, row in existing.items():
            if pin not in wanted_pins:
                await self.session.delete(row)
        await self.session.flush()  # free names before renames land
        for item in wanted:
            pin = DatastreamPin.parse(item.pin).number
            row = existing.get(pin) or Datastream(template_id=template_id, pin=pin, name=item.name, type=item.type)
            row.name, row.type, row.alias, row.units = item.name, item.type, item.alias, item.units
            row.min, row.max, row.decimals = item.min, item.max, item.decimals
            row.default_value = None if item.default is None else str(item.default)
            row.save_raw, row.sync, row.enum_values = item.save_raw, item.sync, item.enum_values
            row.wait_confirmation = item.wait_confirmation
            self.session.add(row)
        await self.session.flush()

    async def _sync_events(self, template_id: int, spec: TemplateIn) -> None:
        existing = {ev.code: ev for ev in await self.events(template_id)}
        wanted = {ev.code for ev in spec.events}
        for code, row in existing.items():
            if code not in wanted:
                await self.session.delete(row)
        for item in spec.events:
            row = existing.get(item.code) or EventDef(template_id=template_id, code=item.code, name=item.name)
            row.name, row.type, row.description = item.name, item.type, item.description
            row.notify = None if item.notify is None else msgspec.to_builtins(item.notify)
            self.session.add(row)
        await self.session.flush()

    async def _sync_meta_fields(self, template_id: int, wanted: list[MetaFieldIn]) -> None:
        """Match fields by name; a field keeps its id unless the document gives another."""
        existing = {m.name: m for m in await self.meta_fields(template_id)}
        names = {m.name for m in wanted}
        for name, stale in existing.items():
            if name not in names:
                await self.session.delete(stale)
        await self.session.flush()
        taken = {m.id for m in wanted if m.id is not None}
        taken |= {row.field_id for name, row in existing.items() if name in names}
        next_id = max(taken | {FIRST_CUSTOM_ID - 1}) + 1
        for item in wanted:
            row = existing.get(item.name)
            if row is None:
                field_id = item.id if item.id is not None else next_id
                next_id = max(next_id, field_id + 1)
                row = MetaField(template_id=template_id, field_id=field_id, name=item.name)
            elif item.id is not None:
                row.field_id = item.id
            row.type, row.default_value = item.type, item.default
            self.session.add(row)
        await self.session.flush()


def _check_unique(spec: TemplateIn) -> None:
    pins = [str(DatastreamPin.parse(d.pin).number) for d in spec.datastreams]
    names = [d.name for d in spec.datastreams]
    for label, values in (("pin", pins), ("name", names)):
        dupes = sorted({str(v) for v in values if values.count(v) > 1})
        if dupes:
            raise ValidationError(f"template {spec.name!r}: datastream {label} used twice: {', '.join(dupes)}")
    for d in spec.datastreams:
        if d.min is not None and d.max is not None and d.min > d.max:
            raise ValidationError(f"template {spec.name!r}: datastream {d.name!r} has min > max")
    meta_names = [m.name for m in spec.metadata]
    meta_ids = [m.id for m in spec.metadata if m.id is not None]
    if len(set(meta_names)) != len(meta_names) or len(set(meta_ids)) != len(meta_ids):
        raise ValidationError(f"template {spec.name!r}: metadata names and ids must be unique")
    system = sorted(SYSTEM_NAMES & set(meta_names))
    if system:
        raise ValidationError(
            f"template {spec.name!r}: {', '.join(system)} is a system metadata field; "
            "it exists in every template and must not be listed"
        )
    codes = [e.code for e in spec.events]
    if len(set(codes)) != len(codes):
        raise ValidationError(f"template {spec.name!r}: event codes must be unique")
    for event in spec.events:
        unknown = sorted(set(event.notify.meta_fields) - set(meta_names)) if event.notify else []
        if unknown:
            raise ValidationError(
                f"template {spec.name!r}: event {event.code!r} notifies the contacts in "
                f"{', '.join(unknown)}, which is not a metadata field of the template"
            )
