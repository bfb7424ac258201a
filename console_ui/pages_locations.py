"""The Locations page (as on Blynk): an organization's named places with their address,
coordinates and time zone, a form for a new one, and each one's devices to assign. Changes go
through ``/api/locations``; ``static/locations.js`` sends the device choices as numbers."""

from __future__ import annotations

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template as Page

from backend.access.guards import requires
from backend.access.permissions import Permission as P
from backend.locations.services import LocationService
from backend.orgs.tree import OrgTreeService
from console_ui.render import page


@get("/locations", guards=[requires(P.LOCATIONS_VIEW)])
async def locations_page(
    request: Request,  # type: ignore[type-arg]
    locations: NamedDependency[LocationService],
    org_tree: NamedDependency[OrgTreeService],
) -> Page:
    """Locations of the organizations in scope, by name, each with its organization's devices."""
    found = await locations.listing()
    devices = {loc.id: await locations.devices(loc.id) for loc in found}
    return page(request, "locations.html", locations=found, devices=devices, orgs=await org_tree.list())


ROUTES = [locations_page]
