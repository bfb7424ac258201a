"""Blynk.Air pages: firmware images (upload, details, delete), shipments (list, a form for a new
one, and a shipment's page whose progress updates live).

Every page uses the Blynk.Air services (the ``ota`` dependency) in the signed-in user's own
organization, like the ``/api/ota`` routes they post to; another organization's firmware or
shipment is answered 404.

Live progress is an htmx poll of ``/air/shipments/{id}/progress`` every 2 s, not the ``/live``
WebSocket: a shipment's statuses are changed by the download route, the ingest and the
scheduler, which may each run in another process (the scheduler runs wherever the advisory lock
is held), while the WebSocket feed only sees what its own process writes. Reading the
shipment's rows from PostgreSQL sees every change wherever it was made; statuses move at the
pace of firmware downloads, so 2 s is prompt, and the poll stops (htmx's status 286) once the
shipment has ended and nothing can change any more.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.response import Template as Page

from backend.access.guards import requires
from backend.access.permissions import Permission as P
from backend.access.permissions import Principal
from backend.console.context import ConsoleServices
from backend.devices.tags import DeviceTags
from backend.errors import ValidationError
from backend.orgs.tree import OrgTreeService
from backend.ota.schemas import Firmware, Shipment
from backend.ota.wiring import OtaServices
from console_ui.render import page
from ota import DeviceStatus
from ota.states import ACTIVE, FAILED

VIEW, SHIP = requires(P.AIR_VIEW), requires(P.AIR_SHIP)
ENDED = ("cancelled", "finished")
STOP_POLLING = 286
"""htmx stops polling an element whose answer has this status (and still swaps it in)."""
DEVICE_ROWS = 500
"""Rows of the per-device table a shipment page shows (filter by status for the others)."""
APPLY_MODES = {
    "lower_version": "Devices with a lower firmware version (semantic version)",
    "earlier_build": "Devices with an earlier build date",
    "another_build": "Devices with any other build",
}
PREFERRED_TIMES = {
    "any": "Any time",
    "night": "Night (00:00–06:00)",
    "morning": "Morning (06:00–12:00)",
    "afternoon": "Afternoon (12:00–18:00)",
    "evening": "Evening (18:00–24:00)",
}
TARGET_KINDS = {
    "template": "All devices of a template (now and later)",
    "devices": "Selected devices",
    "org": "An organization and its sub-organizations",
    "tag": "Devices with a tag",
}


def progress(shipment: Shipment) -> dict[str, Any]:
    """The counts a shipment page draws: per status with Blynk's names, and grouped for the bar."""
    counts = shipment.counts
    looked_at = sum(counts.values())
    groups = {
        "success": counts.get(DeviceStatus.SUCCESS.value, 0),
        "failed": sum(counts.get(s.value, 0) for s in FAILED),
        "active": sum(counts.get(s.value, 0) for s in ACTIVE),
        "pending": counts.get(DeviceStatus.PENDING.value, 0) + shipment.waiting,
    }
    total = looked_at + shipment.waiting
    return {
        "rows": [(s.value, s.label, counts.get(s.value, 0)) for s in DeviceStatus],
        "groups": groups,
        "total": total,
        "percent": {k: (100.0 * v / total if total else 0.0) for k, v in groups.items()},
    }


@get("/air", guards=[VIEW])
async def air_home() -> Redirect:
    """Blynk.Air opens on its shipments."""
    return Redirect("/air/shipments")


@get("/air/firmware", guards=[VIEW])
async def firmware_page(
    request: Request,  # type: ignore[type-arg]
    ota: NamedDependency[OtaServices],
    principal: NamedDependency[Principal],
) -> Page:
    """Uploaded images with their info tag, hashes and signature; an upload form; delete."""
    images = await ota.firmware.list_all(principal.org_id)
    if request.headers.get("hx-request") == "true":
        return page(request, "air_firmware_rows.html", images=images)
    return page(
        request,
        "air_firmware.html",
        images=images,
        max_bytes=ota.firmware.max_bytes,
        public_key=ota.public_key_document()["public_key"],
    )


@get("/air/shipments", guards=[VIEW])
async def shipments_page(
    request: Request,  # type: ignore[type-arg]
    ota: NamedDependency[OtaServices],
    principal: NamedDependency[Principal],
) -> Page:
    """Every shipment with its state and counts."""
    org = principal.org_id
    shipments = await ota.shipments.list_all(org)
    images = {f.id: f for f in await ota.firmware.list_all(org)}
    return page(request, "air_shipments.html", shipments=[(s, progress(s)) for s in shipments], images=images)


@get("/air/shipments/new", guards=[SHIP])
async def new_shipment_page(
    request: Request,  # type: ignore[type-arg]
    ota: NamedDependency[OtaServices],
    principal: NamedDependency[Principal],
    device_tags: NamedDependency[DeviceTags],
    org_tree: NamedDependency[OrgTreeService],
    con: NamedDependency[ConsoleServices],
    firmware: FromQuery[int | None] = None,
) -> Page:
    """The form for a new shipment: firmware, targets (the tag target offers the tags in use),
    apply mode, time window, attempts, pacing, abort rule and per-device timeout."""
    org = principal.org_id
    images = await ota.firmware.list_all(org)
    templates = [t for t in await con.templates.visible() if t.org_id == org] if principal.has(P.TEMPLATES_VIEW) else []
    devices = await con.devices.search(limit=1000)
    return page(
        request,
        "air_shipment_new.html",
        images=images,
        chosen=firmware,
        templates=templates,
        devices=devices,
        tags=await device_tags.in_use(),
        orgs=await org_tree.list(),
        apply_modes=APPLY_MODES,
        preferred_times=PREFERRED_TIMES,
        target_kinds=TARGET_KINDS,
    )


async def _target_text(shipment: Shipment, con: ConsoleServices, org_tree: OrgTreeService) -> str:
    target = shipment.target
    kind = target["kind"]
    if kind == "template":
        names = {t.id: t.name for t in await con.templates.visible()}
        return f"all devices of template {names.get(target['template_id'], '#' + str(target['template_id']))}"
    if kind == "org":
        names = {o.id: o.name for o in await org_tree.list()}
        return f"devices of {names.get(target['org_id'], 'organization #' + str(target['org_id']))} and below"
    if kind == "tag":
        return f"devices tagged {target['tag']!r}"
    return "selected devices"


@get("/air/shipments/{shipment_id:int}", guards=[VIEW])
async def shipment_page(
    request: Request,  # type: ignore[type-arg]
    ota: NamedDependency[OtaServices],
    shipment_id: FromPath[int],
    principal: NamedDependency[Principal],
    org_tree: NamedDependency[OrgTreeService],
    con: NamedDependency[ConsoleServices],
    status: FromQuery[str] = "",
) -> Page:
    """A shipment: its settings, and its progress (counts per status and each device's
    status), which updates by itself while the shipment is live or paused."""
    org = principal.org_id
    shipment = await ota.shipments.get(org, shipment_id)
    firmware: Firmware = await ota.firmware.get(org, shipment.firmware_id)
    return page(
        request,
        "air_shipment.html",
        shipment=shipment,
        firmware=firmware,
        target_text=await _target_text(shipment, con, org_tree),
        apply_modes=APPLY_MODES,
        preferred_times=PREFERRED_TIMES,
        **await _progress_context(ota, org, shipment, status),
    )


@get("/air/shipments/{shipment_id:int}/progress", guards=[VIEW])
async def shipment_progress(
    request: Request,  # type: ignore[type-arg]
    ota: NamedDependency[OtaServices],
    shipment_id: FromPath[int],
    principal: NamedDependency[Principal],
    status: FromQuery[str] = "",
) -> Page:
    """The live part of a shipment page (polled every 2 s; 286 once the shipment has ended)."""
    org = principal.org_id
    shipment = await ota.shipments.get(org, shipment_id)
    context = await _progress_context(ota, org, shipment, status)
    return page(
        request,
        "air_progress.html",
        status_code=STOP_POLLING if shipment.state in ENDED else 200,
        shipment=shipment,
        **context,
    )


async def _progress_context(ota: OtaServices, org: int, shipment: Shipment, status: str) -> dict[str, Any]:
    if status and status not in {s.value for s in DeviceStatus}:
        raise ValidationError(f"status must be one of {', '.join(s.value for s in DeviceStatus)}")
    rows = await ota.shipments.devices(org, shipment.id, status or None, DEVICE_ROWS)
    firmware = await ota.firmware.get(org, shipment.firmware_id)
    return {
        "progress": progress(shipment),
        "devices": rows,
        "status": status,
        "row_limit": DEVICE_ROWS,
        "firmware_size": firmware.size,
        "ended": shipment.state in ENDED,
    }


ROUTES = [air_home, firmware_page, shipments_page, new_shipment_page, shipment_page, shipment_progress]
