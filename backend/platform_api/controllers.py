"""HTTP handlers of devices, datastream values and history under ``/api/v1/organization``
(thin: one service call each; the guards say who may call them)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.access.guards import requires, requires_any
from backend.access.paging import page_args
from backend.access.permissions import Permission as P
from backend.platform_api.context import PlatformServices
from backend.platform_api.params import DeviceId, From, OptionalOrgId, Page, Pin, Size, To
from backend.platform_api.schemas import (
    ActionLogEntryOut,
    ActivatedDevice,
    BlynkPage,
    Connected,
    DatastreamsWriteIn,
    DataStreamValue,
    DatastreamWriteIn,
    DeviceCreateIn,
    DeviceEditIn,
    DeviceTagOut,
    HistoryPoint,
    ImportBatchIn,
    MetafieldIn,
    MetaFieldValue,
    OrgTagOut,
    PlatformDevice,
    PropertyIn,
    RawPageOut,
    SeriesOut,
    TimelineEntryOut,
    TransferIn,
    TriggerEventIn,
)

VIEW = requires_any(P.DEVICES_VIEW, P.DEVICES_VIEW_OWN)
CONTROL = requires_any(P.DEVICES_EDIT, P.DEVICES_EDIT_OWN)
EDIT = requires(P.DEVICES_EDIT)
Api = NamedDependency[PlatformServices]


class PlatformDeviceController(Controller):
    """Blynk's devices API."""

    path = "/"
    tags = ["Platform API: devices"]

    @post("/device/create", guards=[EDIT], status_code=HTTP_201_CREATED)
    async def create(self, data: JSONBody[DeviceCreateIn], api: Api) -> PlatformDevice:
        """Create a device of a template (``templateId`` numeric or ``TMPL...``), optionally in a
        sub-organization (``orgId``) and owned by a user of it (``ownerId``)."""
        return await api.devices.create(data.templateId, data.name, data.orgId, data.ownerId)

    @get("/device", guards=[VIEW])
    async def get_device(self, device_id: DeviceId, api: Api) -> PlatformDevice:
        """Device info with its datastream values, metadata and (with ``tokens.view``) auth token."""
        return await api.devices.get(device_id)

    @get("/device/baseInfo", guards=[VIEW])
    async def base_info(self, device_id: DeviceId, api: Api) -> PlatformDevice:
        """Device info without values, metadata or token."""
        return await api.devices.get(device_id, full=False)

    @put("/device", guards=[EDIT], status_code=HTTP_200_OK)
    async def edit(self, device_id: DeviceId, data: JSONBody[DeviceEditIn], api: Api) -> PlatformDevice:
        """Rename a device."""
        return await api.devices.rename(device_id, data.name)

    @delete("/device", guards=[EDIT], status_code=HTTP_204_NO_CONTENT)
    async def delete_device(self, device_id: DeviceId, api: Api) -> None:
        """Delete a device (its token stops working at once)."""
        await api.devices.delete(device_id)

    @delete("/device/clear", guards=[EDIT], status_code=HTTP_204_NO_CONTENT)
    async def clear(self, device_id: DeviceId, api: Api) -> None:
        """Erase a device's latest values, properties, metadata values and timeline."""
        await api.devices.clear(device_id)

    @get("/devices", guards=[VIEW])
    async def list_devices(
        self,
        api: Api,
        page: Page = 0,
        size: Size = 20,
        include_sub: Annotated[bool, QueryParameter(name="includeSubOrgDevices")] = False,
    ) -> BlynkPage[PlatformDevice]:
        """Devices of the caller's organization (``includeSubOrgDevices``: and of those below it)."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.devices.list_devices(include_sub, page, size))

    @get("/search/devices", guards=[VIEW])
    async def search(
        self,
        api: Api,
        text: Annotated[str, QueryParameter(name="query")] = "",
        sort_by: Annotated[str, QueryParameter(name="sortBy")] = "id",
        sort_order: Annotated[str, QueryParameter(name="sortOrder")] = "ASC",
        page: Page = 0,
        size: Size = 20,
    ) -> BlynkPage[PlatformDevice]:
        """Devices whose name contains ``query``."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.devices.search(text, sort_by, sort_order, page, size))

    @get("/device/online", guards=[VIEW])
    async def online(self, device_id: DeviceId, api: Api) -> Connected:
        """``{"connected": true}`` while the device is connected."""
        return Connected((await api.devices.get(device_id, full=False)).online)

    @delete("/device/owner", guards=[EDIT], status_code=HTTP_204_NO_CONTENT)
    async def remove_owner(self, device_id: DeviceId, api: Api) -> None:
        """The device no longer has an owner."""
        await api.devices.remove_owner(device_id)

    @post("/device/transfer", guards=[requires(P.DEVICES_MOVE)], status_code=HTTP_204_NO_CONTENT)
    async def transfer(self, data: JSONBody[TransferIn], api: Api) -> None:
        """Give a device to a user (and their organization) or to an organization."""
        await api.devices.transfer(data.deviceId, data.newUserId, data.newOrgId)

    @post("/device/trigger-event", guards=[CONTROL], status_code=HTTP_204_NO_CONTENT)
    async def trigger_event(self, data: JSONBody[TriggerEventIn], api: Api) -> None:
        """Log one of the template's events on the device's timeline."""
        await api.devices.log_event(data.deviceId, data.eventCode, data.eventDescription)

    @get("/device/timeline", guards=[VIEW])
    async def timeline(
        self,
        device_id: DeviceId,
        api: Api,
        page: Page = 0,
        size: Size = 20,
        event_type: Annotated[str | None, QueryParameter(name="eventType")] = None,
    ) -> BlynkPage[TimelineEntryOut]:
        """Timeline entries (events, online, offline), newest first."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.devices.timeline(device_id, event_type, page, size))

    @get("/device/logs", guards=[VIEW])
    async def actions_log(
        self,
        device_id: DeviceId,
        api: Api,
        page: Page = 0,
        size: Annotated[int, QueryParameter(name="size", description="Page size, 1 to 100")] = 20,
    ) -> BlynkPage[ActionLogEntryOut]:
        """The actions log: values set by users (console) and API clients, with who set them and
        whether the device was online, newest first."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.devices.actions(device_id, page, size))

    @get("/device/metafield", guards=[VIEW])
    async def metafields(self, device_id: DeviceId, api: Api) -> list[MetaFieldValue]:
        """Every metadata field of the device with its value."""
        return await api.devices.metafields(device_id)

    @post("/device/metafield", guards=[CONTROL], status_code=HTTP_204_NO_CONTENT)
    async def set_metafield(self, data: JSONBody[MetafieldIn], api: Api) -> None:
        """Set a metadata value by ``metaFieldId`` or ``metaFieldName`` (sent to the device)."""
        await api.devices.set_metafield(data.deviceId, data.metaFieldId, data.metaFieldName, data.value)


class PlatformLookupController(Controller):
    """Devices by owner, by a user's organization, recently activated; tags."""

    path = "/"
    tags = ["Platform API: devices"]

    @get("/device/by-owner", guards=[VIEW])
    async def by_owner(
        self,
        api: Api,
        email: Annotated[str, QueryParameter(name="ownerEmail")],
        org_id: OptionalOrgId = None,
        page: Page = 0,
        size: Size = 20,
    ) -> BlynkPage[PlatformDevice]:
        """Devices of ``orgId`` (the caller's organization by default) owned by the user with ``ownerEmail``."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.lookups.by_owner(email, org_id, page, size))

    @get("/device/by-user-org", guards=[VIEW])
    async def by_user_org(
        self, api: Api, email: Annotated[str, QueryParameter(name="userEmail")], page: Page = 0, size: Size = 20
    ) -> BlynkPage[PlatformDevice]:
        """Devices of the organization the user with ``userEmail`` belongs to."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.lookups.by_user_org(email, page, size))

    @get("/device/last-activated", guards=[VIEW])
    async def last_activated(
        self,
        api: Api,
        org_id: OptionalOrgId = None,
        minutes: Annotated[int, QueryParameter(name="minutes", description="1 to 60")] = 5,
    ) -> list[ActivatedDevice]:
        """Devices of ``orgId`` (the caller's by default, not its sub-organizations) activated in the
        last ``minutes``, newest first."""
        return await api.lookups.last_activated(org_id, minutes)

    @get("/device/tags", guards=[VIEW])
    async def device_tags(self, device_id: DeviceId, api: Api) -> list[DeviceTagOut]:
        """A device's tags."""
        return await api.lookups.device_tags(device_id)

    @get("/tags", guards=[VIEW])
    async def org_tags(self, api: Api, org_id: OptionalOrgId = None) -> list[OrgTagOut]:
        """Tags on the devices of ``orgId`` (the caller's organization by default), with device counts."""
        return await api.lookups.org_tags(org_id)

    @post("/device/import/batch", guards=[CONTROL], status_code=HTTP_204_NO_CONTENT)
    async def import_batch(self, data: JSONBody[ImportBatchIn], api: Api) -> None:
        """Import timestamped points (``ts`` in epoch ms, within a month) into a datastream's history,
        as the device API's ``batch/update``: all or none, counted against the daily import limit."""
        await api.lookups.import_points(data.deviceId, data.dataStreamId, data.values)


class PlatformValueController(Controller):
    """Datastream values and history."""

    path = "/device"
    tags = ["Platform API: datastreams"]

    @get("/datastreams", guards=[VIEW])
    async def values(
        self,
        device_id: DeviceId,
        api: Api,
        pins: Annotated[str | None, QueryParameter(name="pins", description="v1,v2")] = None,
    ) -> list[DataStreamValue]:
        """Latest values of the given pins (all datastreams when ``pins`` is absent)."""
        info = await api.devices.visible(device_id)
        wanted = None if pins is None else [api.devices.spec(info, p).pin for p in pins.split(",") if p.strip()]
        return await api.devices.values(info, wanted)

    @post("/datastream", guards=[CONTROL], status_code=HTTP_204_NO_CONTENT)
    async def write(self, data: JSONBody[DatastreamWriteIn], api: Api) -> None:
        """Set one value (checked, stored, sent to the device), as the device API's ``update``."""
        await api.devices.write(data.deviceId, {data.dataStreamId: data.value})

    @post("/datastreams", guards=[CONTROL], status_code=HTTP_204_NO_CONTENT)
    async def write_many(self, data: JSONBody[DatastreamsWriteIn], api: Api) -> None:
        """Set several values, keyed by datastream id (nothing is stored unless all are valid)."""
        await api.devices.write(data.deviceId, dict(data.values))

    @post("/datastream/property", guards=[CONTROL], status_code=HTTP_204_NO_CONTENT)
    async def set_property(self, data: JSONBody[PropertyIn], api: Api) -> None:
        """Set a widget property (``label``, ``color``, ``isDisabled``...) of a datastream."""
        await api.devices.set_property(data.deviceId, data.dataStreamId, data.property, data.value)

    @get("/datastream/history", guards=[VIEW])
    async def history(
        self,
        device_id: DeviceId,
        pin: Pin,
        api: Api,
        start: From = None,
        end: To = None,
        page: Page = 0,
        size: Size = 20,
    ) -> BlynkPage[HistoryPoint]:
        """Raw points of a datastream with "Save Raw Data", oldest first (Blynk's page)."""
        page, size = page_args(page, size)
        return BlynkPage(*await api.history.blynk_page(device_id, pin, start, end, page, size))

    @get("/datastream/series", guards=[VIEW])
    async def series(
        self,
        device_id: DeviceId,
        pin: Pin,
        start: Annotated[int, QueryParameter(name="from")],
        api: Api,
        end: To = None,
        points: Annotated[int, QueryParameter(name="points")] = 1000,
    ) -> SeriesOut:
        """At most ``points`` buckets over [from, to] (a point at ``to`` included), each with min, max and average."""
        return await api.history.series(device_id, pin, start, end, points)

    @get("/datastream/raw", guards=[VIEW])
    async def raw(
        self,
        device_id: DeviceId,
        pin: Pin,
        start: Annotated[int, QueryParameter(name="from")],
        api: Api,
        end: To = None,
        limit: Annotated[int, QueryParameter(name="limit")] = 1000,
        cursor: Annotated[str | None, QueryParameter(name="cursor")] = None,
    ) -> RawPageOut:
        """Raw points in time order; pass ``next`` back as ``cursor`` for the following page."""
        return await api.history.raw(device_id, pin, start, end, limit, cursor)

    @get("/datastream/export", guards=[VIEW])
    async def export(
        self,
        device_id: DeviceId,
        pin: Pin,
        start: Annotated[int, QueryParameter(name="from")],
        api: Api,
        end: To = None,
        fmt: Annotated[str, QueryParameter(name="format")] = "csv",
    ) -> Stream:
        """Every raw point of the range as CSV or JSON, streamed (memory does not grow with the range)."""
        body = await api.history.export(device_id, pin, start, end, fmt)
        media = "text/csv" if fmt == "csv" else "application/json"
        return Stream(
            body,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="device_{device_id}_{pin}.{fmt}"'},
        )
