"""HTTP handlers of the organization tree and of devices' places in it, under ``/api``."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from backend.access.guards import requires, requires_any, signed_in
from backend.access.paging import Page, page_args
from backend.access.permissions import Permission as P
from backend.devices.directory import DeviceDirectory
from backend.devices.schemas import DeviceMoveIn, DeviceOut, DeviceTagsIn, DeviceTagsOut, TagUseOut
from backend.devices.tags import DeviceTags
from backend.orgs.schemas import OrgCreateIn, OrgMoveIn, OrgOut, OrgUpdateIn
from backend.orgs.tree import OrgTreeService

VIEW_DEVICES = requires_any(P.DEVICES_VIEW, P.DEVICES_VIEW_OWN)
EDIT_DEVICES = requires_any(P.DEVICES_EDIT, P.DEVICES_EDIT_OWN)


class OrgController(Controller):
    """Organizations in the caller's scope (their own; with ``orgs.view_sub`` those below)."""

    path = "/orgs"

    @get("/", guards=[signed_in])
    async def list_orgs(self, org_tree: NamedDependency[OrgTreeService]) -> list[OrgOut]:
        """Every organization the caller can see."""
        return [o for o in await org_tree.list()]

    @get("/{org_id:int}", guards=[signed_in])
    async def get_org(self, org_id: FromPath[int], org_tree: NamedDependency[OrgTreeService]) -> OrgOut:
        """One organization."""
        return await org_tree.get(org_id)

    @post("/", guards=[requires(P.ORGS_CREATE)])
    async def create_org(self, data: JSONBody[OrgCreateIn], org_tree: NamedDependency[OrgTreeService]) -> OrgOut:
        """A sub-organization (of the caller's by default), within the depth limit."""
        return await org_tree.create(data.name, data.parent_id, data.tz)

    @patch("/{org_id:int}", guards=[requires(P.ORGS_EDIT)])
    async def update_org(
        self, org_id: FromPath[int], data: JSONBody[OrgUpdateIn], org_tree: NamedDependency[OrgTreeService]
    ) -> OrgOut:
        """Rename an organization or change its time zone."""
        return await org_tree.update(org_id, data.name, data.tz)

    @delete("/{org_id:int}", guards=[requires(P.ORGS_DELETE)])
    async def delete_org(self, org_id: FromPath[int], org_tree: NamedDependency[OrgTreeService]) -> None:
        """Delete an empty sub-organization."""
        await org_tree.delete(org_id)

    @post("/{org_id:int}/move", guards=[requires(P.ORGS_MOVE)], status_code=HTTP_200_OK)
    async def move_org(
        self, org_id: FromPath[int], data: JSONBody[OrgMoveIn], org_tree: NamedDependency[OrgTreeService]
    ) -> OrgOut:
        """Put a sub-organization under another parent (no cycles, depth limit kept)."""
        return await org_tree.move(org_id, data.parent_id)


class DeviceController(Controller):
    """Devices as resources of the tree (the device API itself is /external/api)."""

    path = "/devices"

    @get("/", guards=[VIEW_DEVICES])
    async def list_devices(
        self,
        device_directory: NamedDependency[DeviceDirectory],
        org_id: FromQuery[int | None] = None,
        page: FromQuery[int] = 0,
        size: FromQuery[int] = 50,
    ) -> Page[DeviceOut]:
        """Visible devices of one organization or of the whole scope."""
        page, size = page_args(page, size)
        devices, total = await device_directory.list(org_id, page, size)
        return Page([d for d in devices], total, page, size)

    @get("/{device_id:int}", guards=[VIEW_DEVICES])
    async def get_device(
        self, device_id: FromPath[int], device_directory: NamedDependency[DeviceDirectory]
    ) -> DeviceOut:
        """One visible device."""
        return await device_directory.get(device_id)

    @post("/{device_id:int}/move", guards=[requires(P.DEVICES_MOVE)], status_code=HTTP_200_OK)
    async def move_device(
        self, device_id: FromPath[int], data: JSONBody[DeviceMoveIn], device_directory: NamedDependency[DeviceDirectory]
    ) -> DeviceOut:
        """Give a device to another organization in scope."""
        return await device_directory.move(device_id, data.org_id)

    @get("/{device_id:int}/tags", guards=[VIEW_DEVICES])
    async def get_device_tags(
        self, device_id: FromPath[int], device_tags: NamedDependency[DeviceTags]
    ) -> DeviceTagsOut:
        """A visible device's tags."""
        return await device_tags.of(device_id)

    @put("/{device_id:int}/tags", guards=[EDIT_DEVICES])
    async def put_device_tags(
        self, device_id: FromPath[int], data: JSONBody[DeviceTagsIn], device_tags: NamedDependency[DeviceTags]
    ) -> DeviceTagsOut:
        """Replace a device's tags (``devices.edit``, or ``devices.edit.own`` on a device one owns):
        each 1-64 characters once trimmed, no control characters, at most 32."""
        return await device_tags.replace(device_id, data.tags)


class TagController(Controller):
    """Tags in use, for pickers (a Blynk.Air shipment can target a tag)."""

    path = "/tags"

    @get("/", guards=[VIEW_DEVICES])
    async def list_tags(
        self, device_tags: NamedDependency[DeviceTags], org_id: FromQuery[int | None] = None
    ) -> list[TagUseOut]:
        """Tags on the visible devices (of one organization, or of the whole scope), with how
        many devices carry each."""
        return await device_tags.in_use(org_id)
