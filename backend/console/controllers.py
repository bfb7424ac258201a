"""The JSON routes the console pages call, under ``/api/console`` (thin: one service call each;
the accounts guards say who may call them, the accounts session middleware checks CSRF; the
top mounts them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from backend.access.guards import requires, requires_any
from backend.access.permissions import Permission as P
from backend.console.context import ConsoleServices
from backend.console.dashboards import DashboardIn
from backend.console.export import export_csv
from backend.console.menu import DeviceMenu
from backend.console.mobile import MobileDashboardIn
from backend.console.schemas import (
    DashboardOut,
    DeviceCreatedOut,
    DeviceCreateIn,
    DeviceInfoOut,
    LatestOut,
    LineOut,
    LinesOut,
    MetaIn,
    MetaOut,
    MobileDashboardOut,
    PingOut,
    SentOut,
    SeriesOut,
    TemplateCreateIn,
    TemplateOut,
    TimelineOut,
    TokenOut,
    ValuesOut,
    WriteIn,
    WrittenOut,
)
from backend.console.templates import TemplateInfoIn
from backend.errors import ValidationError
from backend.numbers import is_digits
from backend.templates.models import Template

VIEW_DEVICES = requires_any(P.DEVICES_VIEW, P.DEVICES_VIEW_OWN)
CONTROL_DEVICES = requires_any(P.DEVICES_EDIT, P.DEVICES_EDIT_OWN)
VIEW_TEMPLATES = requires(P.TEMPLATES_VIEW)
EDIT_TEMPLATES = requires(P.TEMPLATES_EDIT)


def template_out(t: Template) -> TemplateOut:
    """The wire form of a template row."""
    assert t.id is not None
    return TemplateOut(
        t.id,
        t.public_id,
        t.org_id,
        t.name,
        t.description,
        t.hardware,
        t.connection_type,
        t.heartbeat_interval,
        t.offline_ignore_seconds,
        t.gateway_enabled,
    )


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def parse_instant(text: str, name: str) -> datetime:
    """An ISO 8601 time or epoch milliseconds, as an aware datetime; raises ValidationError."""
    try:
        if is_digits(text.lstrip("-")):
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        at = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise ValidationError(f"{name} must be an ISO 8601 time or epoch milliseconds") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class ConsoleTemplateController(Controller):
    """Templates, their parts and their web dashboard."""

    path = "/templates"

    @get("/", guards=[VIEW_TEMPLATES])
    async def list_templates(self, con: NamedDependency[ConsoleServices]) -> list[TemplateOut]:
        """Templates of every organization in scope."""
        return [template_out(t) for t in await con.templates.visible()]

    @post("/", guards=[EDIT_TEMPLATES])
    async def create_template(
        self, data: JSONBody[TemplateCreateIn], con: NamedDependency[ConsoleServices]
    ) -> TemplateOut:
        """A new, empty template."""
        info = msgspec.convert({k: v for k, v in msgspec.to_builtins(data).items() if k != "org_id"}, TemplateInfoIn)
        return template_out(await con.templates.create(data.org_id, info))

    @get("/{template_id:int}", guards=[VIEW_TEMPLATES])
    async def get_template(self, template_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> TemplateOut:
        """One template."""
        return template_out(await con.templates.get(template_id))

    @patch("/{template_id:int}", guards=[EDIT_TEMPLATES])
    async def update_template(
        self, template_id: FromPath[int], data: JSONBody[TemplateInfoIn], con: NamedDependency[ConsoleServices]
    ) -> TemplateOut:
        """Change a template's info."""
        return template_out(await con.templates.update_info(template_id, data))

    @post("/{template_id:int}/datastreams", guards=[EDIT_TEMPLATES], status_code=HTTP_200_OK)
    async def add_datastream(
        self, template_id: FromPath[int], data: JSONBody[dict[str, Any]], con: NamedDependency[ConsoleServices]
    ) -> TemplateOut:
        """Add a datastream (the import document's datastream shape)."""
        return template_out(await con.templates.put_datastream(template_id, data))

    @put("/{template_id:int}/datastreams/{pin:int}", guards=[EDIT_TEMPLATES])
    async def replace_datastream(
        self,
        template_id: FromPath[int],
        pin: FromPath[int],
        data: JSONBody[dict[str, Any]],
        con: NamedDependency[ConsoleServices],
    ) -> TemplateOut:
        """Change the datastream on V``pin``."""
        return template_out(await con.templates.put_datastream(template_id, data, replace_pin=pin))

    @delete("/{template_id:int}/datastreams/{pin:int}", guards=[EDIT_TEMPLATES], status_code=HTTP_200_OK)
    async def delete_datastream(
        self, template_id: FromPath[int], pin: FromPath[int], con: NamedDependency[ConsoleServices]
    ) -> TemplateOut:
        """Remove the datastream on V``pin`` and its widgets."""
        return template_out(await con.templates.delete_datastream(template_id, pin))

    @post("/{template_id:int}/events", guards=[EDIT_TEMPLATES], status_code=HTTP_200_OK)
    async def put_event(
        self, template_id: FromPath[int], data: JSONBody[dict[str, Any]], con: NamedDependency[ConsoleServices]
    ) -> TemplateOut:
        """Add or change an event definition (matched by code)."""
        return template_out(await con.templates.put_event(template_id, data))

    @delete("/{template_id:int}/events/{code:str}", guards=[EDIT_TEMPLATES], status_code=HTTP_200_OK)
    async def delete_event(
        self, template_id: FromPath[int], code: FromPath[str], con: NamedDependency[ConsoleServices]
    ) -> TemplateOut:
        """Remove an event definition."""
        return template_out(await con.templates.delete_event(template_id, code))

    @post("/{template_id:int}/metadata", guards=[EDIT_TEMPLATES], status_code=HTTP_200_OK)
    async def put_meta_field(
        self, template_id: FromPath[int], data: JSONBody[dict[str, Any]], con: NamedDependency[ConsoleServices]
    ) -> TemplateOut:
        """Add or change a custom metadata field (matched by name)."""
        return template_out(await con.templates.put_meta_field(template_id, data))

    @delete("/{template_id:int}/metadata/{name:str}", guards=[EDIT_TEMPLATES], status_code=HTTP_200_OK)
    async def delete_meta_field(
        self, template_id: FromPath[int], name: FromPath[str], con: NamedDependency[ConsoleServices]
    ) -> TemplateOut:
        """Remove a custom metadata field."""
        return template_out(await con.templates.delete_meta_field(template_id, name))

    @get("/{template_id:int}/dashboard", guards=[VIEW_TEMPLATES])
    async def get_dashboard(self, template_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> DashboardOut:
        """The web dashboard's widgets."""
        return DashboardOut(template_id, await con.templates.dashboard(template_id))

    @put("/{template_id:int}/dashboard", guards=[EDIT_TEMPLATES])
    async def save_dashboard(
        self, template_id: FromPath[int], data: JSONBody[DashboardIn], con: NamedDependency[ConsoleServices]
    ) -> DashboardOut:
        """Save the web dashboard (every device of the template shows it)."""
        return DashboardOut(template_id, await con.templates.save_dashboard(template_id, data.widgets))

    @get("/{template_id:int}/mobile-dashboard", guards=[VIEW_TEMPLATES])
    async def get_mobile_dashboard(
        self, template_id: FromPath[int], con: NamedDependency[ConsoleServices]
    ) -> MobileDashboardOut:
        """The mobile dashboard's widgets, in order."""
        return MobileDashboardOut(template_id, await con.templates.mobile_dashboard(template_id))

    @put("/{template_id:int}/mobile-dashboard", guards=[EDIT_TEMPLATES])
    async def save_mobile_dashboard(
        self, template_id: FromPath[int], data: JSONBody[MobileDashboardIn], con: NamedDependency[ConsoleServices]
    ) -> MobileDashboardOut:
        """Save the mobile dashboard (the app shows it for every device of the template)."""
        return MobileDashboardOut(template_id, await con.templates.save_mobile_dashboard(template_id, data.widgets))


class ConsoleDeviceController(Controller):
    """Devices: creation, token, values, writes, history and timeline."""

    path = "/devices"

    @post("/", guards=[requires(P.DEVICES_EDIT)])
    async def create_device(
        self, data: JSONBody[DeviceCreateIn], con: NamedDependency[ConsoleServices]
    ) -> DeviceCreatedOut:
        """A new device of a template; answers its auth token."""
        device, token = await con.devices.create(data.org_id, data.template_id, data.name)
        assert device.id is not None
        return DeviceCreatedOut(device.id, device.name, token.value)

    @get("/{device_id:int}/token", guards=[requires(P.TOKENS_VIEW)])
    async def token(self, device_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> TokenOut:
        """The device's auth token."""
        return TokenOut((await con.devices.token(device_id)).value)

    @post("/{device_id:int}/token/rotate", guards=[requires(P.TOKENS_EDIT)], status_code=HTTP_200_OK)
    async def rotate_token(self, device_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> TokenOut:
        """Replace the auth token; the old one stops working at once."""
        return TokenOut((await con.devices.rotate_token(device_id)).value)

    @get("/{device_id:int}/values", guards=[VIEW_DEVICES])
    async def values(self, device_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> ValuesOut:
        """Latest values, widget properties and the online state."""
        device = await con.devices.get(device_id)
        latest = await con.devices.latest(device_id)
        props = await con.devices.properties(device_id)
        return ValuesOut(
            [LatestOut(pin, v, _ms(at)) for pin, (v, at) in sorted(latest.items())],
            {str(pin): p for pin, p in props.items()},
            device.online,
        )

    @post("/{device_id:int}/values/{pin:int}", guards=[CONTROL_DEVICES], status_code=HTTP_200_OK)
    async def write(
        self,
        device_id: FromPath[int],
        pin: FromPath[int],
        data: JSONBody[WriteIn],
        con: NamedDependency[ConsoleServices],
    ) -> WrittenOut:
        """Write a value to the device, as the HTTP API's ``update``."""
        value = await con.devices.write(device_id, pin, data.value)
        return WrittenOut(pin, value.text)

    @get("/{device_id:int}/lines", guards=[VIEW_DEVICES])
    async def lines(
        self,
        device_id: FromPath[int],
        pin: FromQuery[int],
        con: NamedDependency[ConsoleServices],
        limit: FromQuery[int] = 50,
    ) -> LinesOut:
        """A terminal's backlog: the newest values of a string datastream, oldest first."""
        return LinesOut(pin, [LineOut(_ms(at), v) for at, v in await con.devices.recent_lines(device_id, pin, limit)])

    @put("/{device_id:int}/metadata", guards=[CONTROL_DEVICES])
    async def set_metadata(
        self, device_id: FromPath[int], data: JSONBody[MetaIn], con: NamedDependency[ConsoleServices]
    ) -> MetaOut:
        """Set a metadata value (pushed to the device; ``Device Name`` renames it)."""
        return MetaOut(data.name, await con.devices.set_metadata(device_id, data.name, data.value))

    @get("/{device_id:int}/history", guards=[VIEW_DEVICES])
    async def history(
        self,
        device_id: FromPath[int],
        pin: FromQuery[int],
        start: FromQuery[str],
        end: FromQuery[str],
        con: NamedDependency[ConsoleServices],
        points: FromQuery[int] = 600,
    ) -> SeriesOut:
        """Chart buckets over [start, end] (a point at ``end`` included): each with min, max and average."""
        begin, finish = parse_instant(start, "start"), parse_instant(end, "end")
        s = await con.devices.history(device_id, pin, begin, finish, points)
        return SeriesOut(
            s.source,
            s.width.total_seconds() * 1000,
            _ms(begin),
            _ms(finish),
            [_ms(b.ts) for b in s.buckets],
            [b.min for b in s.buckets],
            [b.max for b in s.buckets],
            [b.avg for b in s.buckets],
        )

    @post("/{device_id:int}/ping", guards=[CONTROL_DEVICES], status_code=HTTP_200_OK)
    async def ping(self, device_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> PingOut:
        """Ping the device; the answer is the round trip the broker measured (409 offline or no answer)."""
        return PingOut((await DeviceMenu(con.devices).ping(device_id)).rtt_ms)

    @post("/{device_id:int}/info", guards=[CONTROL_DEVICES], status_code=HTTP_200_OK)
    async def request_info(self, device_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> DeviceInfoOut:
        """Ask the device for its ``info/mcu`` and answer what it sent (409 offline or no answer)."""
        got = await DeviceMenu(con.devices).request_info(device_id)
        return DeviceInfoOut(datetime.fromtimestamp(got.received_ms / 1000, UTC), **got.fields)

    @post("/{device_id:int}/reboot", guards=[CONTROL_DEVICES], status_code=HTTP_200_OK)
    async def reboot(self, device_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> SentOut:
        """Ask the device to restart (409 when it is offline: the command would be lost)."""
        await DeviceMenu(con.devices).reboot(device_id)
        return SentOut("reboot")

    @delete("/{device_id:int}", guards=[requires(P.DEVICES_EDIT)], status_code=HTTP_200_OK)
    async def delete_device(self, device_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> SentOut:
        """Delete the device with its data; its token stops working and a connection ends."""
        await DeviceMenu(con.devices).delete(device_id)
        return SentOut("delete")

    @get("/{device_id:int}/export", guards=[VIEW_DEVICES])
    async def export(
        self,
        device_id: FromPath[int],
        pin: FromQuery[int],
        start: FromQuery[str],
        end: FromQuery[str],
        con: NamedDependency[ConsoleServices],
    ) -> Stream:
        """Every raw point of V``pin`` in [start, end) as CSV (``ts,time,value``), streamed."""
        begin, finish = parse_instant(start, "start"), parse_instant(end, "end")
        body = await export_csv(con.devices, device_id, pin, begin, finish)
        return Stream(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="device_{device_id}_V{pin}.csv"'},
        )

    @get("/{device_id:int}/timeline", guards=[VIEW_DEVICES])
    async def timeline(
        self, device_id: FromPath[int], con: NamedDependency[ConsoleServices], limit: FromQuery[int] = 100
    ) -> list[TimelineOut]:
        """The newest timeline entries, newest first."""
        return [
            TimelineOut(e.ts, e.kind, e.code, e.type, e.description)
            for e in await con.devices.timeline(device_id, limit)
        ]
