"""``/api/locations``: thin handlers over :class:`~backend.locations.services.LocationService`."""

from __future__ import annotations

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.guards import requires
from backend.access.permissions import Permission as P
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.locations.schemas import DevicesIn, LocationDeviceOut, LocationIn, LocationOut
from backend.locations.services import LocationService, Place


def provide_locations(
    db_session: NamedDependency[AsyncSession], org_scope: NamedDependency[Scope], audit: NamedDependency[AuditService]
) -> LocationService:
    """The ``locations`` dependency: the request's locations service."""
    return LocationService(db_session, org_scope, audit)


def locations_dependencies() -> dict[str, Provide]:
    """What the locations area provides to its routes and pages."""
    return {"locations": Provide(provide_locations, sync_to_thread=False)}


def _place(data: LocationIn) -> Place:
    return Place(data.name, data.address, data.lat, data.lon, data.time_zone)


class LocationController(Controller):
    """Locations of the organizations in scope, and the devices at each."""

    path = "/locations"
    dependencies = locations_dependencies()

    @get("/", guards=[requires(P.LOCATIONS_VIEW)])
    async def list_locations(
        self, locations: NamedDependency[LocationService], org_id: FromQuery[int | None] = None
    ) -> list[LocationOut]:
        """Locations of one organization, or of every organization in scope, by name."""
        return await locations.listing(org_id)

    @post("/", guards=[requires(P.LOCATIONS_EDIT)], status_code=HTTP_201_CREATED)
    async def create_location(
        self, data: JSONBody[LocationIn], locations: NamedDependency[LocationService]
    ) -> LocationOut:
        """A new location (name unique in its organization)."""
        return await locations.create(data.org_id, _place(data))

    @get("/{location_id:int}", guards=[requires(P.LOCATIONS_VIEW)])
    async def get_location(
        self, location_id: FromPath[int], locations: NamedDependency[LocationService]
    ) -> LocationOut:
        """One location."""
        return await locations.get(location_id)

    @put("/{location_id:int}", guards=[requires(P.LOCATIONS_EDIT)])
    async def update_location(
        self, location_id: FromPath[int], data: JSONBody[LocationIn], locations: NamedDependency[LocationService]
    ) -> LocationOut:
        """Change a location (``org_id`` is ignored: a location stays in its organization)."""
        return await locations.update(location_id, _place(data))

    @delete("/{location_id:int}", guards=[requires(P.LOCATIONS_EDIT)], status_code=HTTP_200_OK)
    async def delete_location(self, location_id: FromPath[int], locations: NamedDependency[LocationService]) -> None:
        """Delete a location; its devices are unassigned."""
        await locations.delete(location_id)

    @get("/{location_id:int}/devices", guards=[requires(P.LOCATIONS_VIEW)])
    async def location_devices(
        self, location_id: FromPath[int], locations: NamedDependency[LocationService]
    ) -> list[LocationDeviceOut]:
        """The devices of the location's organization, each marked if it is at this location."""
        return await locations.devices(location_id)

    @put("/{location_id:int}/devices", guards=[requires(P.LOCATIONS_EDIT)])
    async def assign_devices(
        self, location_id: FromPath[int], data: JSONBody[DevicesIn], locations: NamedDependency[LocationService]
    ) -> LocationOut:
        """Make the listed devices (of the location's organization) the location's devices."""
        return await locations.assign(location_id, data.device_ids)
