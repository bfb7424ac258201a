"""The installable web app (``/app``): a phone-first shell for end users, with a web app
manifest and a service worker, on the console's session, permissions and APIs.

- ``/app`` is the shell: one page holding no user data (so the service worker may keep it and
  open it offline); its script asks the JSON routes below for everything and writes through
  the console's own checked API (``/api/console/...``, with the CSRF header).
- ``/app/sw.js`` is the service worker, served with ``Service-Worker-Allowed: /app`` so its
  scope covers ``/app`` itself and everything under it.
- ``/app/manifest.webmanifest`` makes the app installable (Android's "Add to home screen";
  iOS reads the ``apple-*`` tags of the shell).
- ``/app/api/session``, ``/app/api/devices`` and ``/app/api/devices/{id}`` answer the app's
  reads as JSON, through the same services (and so the same visibility) as the console's
  device pages; a device's answer carries its template's mobile dashboard (edited on the
  template's "Mobile dashboard" tab), which the app draws and keeps live over ``/live``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import File
from litestar.response import Template as Page

from backend.access.guards import PUBLIC, requires_any, signed_in
from backend.access.permissions import Permission as P
from backend.access.permissions import Principal
from backend.console.context import ConsoleServices
from backend.console.mobile import MobileWidget
from backend.templates.models import Template

HERE = Path(__file__).resolve().parent
APP_STATIC = HERE / "static" / "app"
SCOPE = "/app"
VIEW = requires_any(P.DEVICES_VIEW, P.DEVICES_VIEW_OWN)
THEME_LIGHT = "#1f6feb"
BACKGROUND = "#ffffff"

MANIFEST: dict[str, Any] = {
    "name": "openblynk",
    "short_name": "openblynk",
    "description": "Your devices, live: values, controls, notifications and scenes.",
    "id": SCOPE,
    "start_url": f"{SCOPE}#/devices",
    "scope": SCOPE,
    "display": "standalone",
    "orientation": "portrait",
    "theme_color": THEME_LIGHT,
    "background_color": BACKGROUND,
    "icons": [
        {"src": "/static/console/app/icon-192.png", "sizes": "192x192", "type": "image/png", "purpose": "any"},
        {"src": "/static/console/app/icon-512.png", "sizes": "512x512", "type": "image/png", "purpose": "any"},
        {
            "src": "/static/console/app/icon-maskable-512.png",
            "sizes": "512x512",
            "type": "image/png",
            "purpose": "maskable",
        },
        {"src": "/static/console/app/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
    ],
}
"""The web app manifest (W3C Web Application Manifest)."""


class SessionOut(msgspec.Struct):
    """Who is signed in, what they may do, and the CSRF token the app's writes carry."""

    email: str
    csrf: str
    can: list[str]


class AppDeviceOut(msgspec.Struct):
    """A line of the app's device list."""

    id: int
    name: str
    template: str
    online: bool
    last_seen: int | None


class DatastreamOut(msgspec.Struct):
    """A datastream of the device's template, with the control the app shows for it."""

    pin: int
    name: str
    type: str
    min: float | None
    max: float | None
    units: str
    control: str
    """``switch`` (an integer 0/1), ``slider`` (a number with a range) or ``none`` (display)."""


class AppDeviceDetailOut(msgspec.Struct):
    """A device as its page in the app shows it (values come from the console's values route)."""

    id: int
    name: str
    template: str
    online: bool
    can_control: bool
    datastreams: list[DatastreamOut]
    dashboard: list[MobileWidget]
    """The template's mobile dashboard, in order (empty: the app shows a card a datastream)."""


def _control(kind: str, lo: float | None, hi: float | None) -> str:
    if kind == "integer" and lo == 0 and hi == 1:
        return "switch"
    if kind in ("integer", "double") and lo is not None and hi is not None and lo < hi:
        return "slider"
    return "none"


@get(SCOPE, opt=PUBLIC)
async def app_shell() -> Page:
    """The app's shell (no user data: the service worker keeps it for offline starts). It uses
    none of the console's npm files, so it is served even when an install lacks them."""
    return Page(template_name="app/shell.html", context={"theme": THEME_LIGHT}, headers={"Cache-Control": "no-cache"})


@get(f"{SCOPE}/sw.js", opt=PUBLIC)
async def service_worker() -> File:
    """The service worker, allowed the scope ``/app`` (its own directory would be ``/app/``)."""
    return File(
        APP_STATIC / "sw.js",
        content_disposition_type="inline",
        media_type="text/javascript",
        headers={"Service-Worker-Allowed": SCOPE, "Cache-Control": "no-cache"},
    )


@get(f"{SCOPE}/manifest.webmanifest", opt=PUBLIC)
async def manifest() -> Response[bytes]:
    """The web app manifest."""
    return Response(
        msgspec.json.encode(MANIFEST),
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache"},
    )


@get(f"{SCOPE}/api/session", guards=[signed_in])
async def app_session(principal: NamedDependency[Principal]) -> SessionOut:
    """The signed-in user, their permissions and CSRF token."""
    return SessionOut(principal.email, principal.csrf_token, sorted(p.value for p in principal.permissions))


@get(f"{SCOPE}/api/devices", guards=[VIEW])
async def app_devices(con: NamedDependency[ConsoleServices], q: FromQuery[str] = "") -> list[AppDeviceOut]:
    """The devices the user may see whose name contains ``q``."""
    rows = await con.devices.search(q)
    return [
        AppDeviceOut(
            r.id, r.name, r.template_name, r.online, int(r.last_seen.timestamp() * 1000) if r.last_seen else None
        )
        for r in rows
    ]


@get(f"{SCOPE}/api/devices/{{device_id:int}}", guards=[VIEW])
async def app_device(
    device_id: FromPath[int], principal: NamedDependency[Principal], con: NamedDependency[ConsoleServices]
) -> AppDeviceDetailOut:
    """A device, its template's datastreams and mobile dashboard, and whether the user may write
    to it."""
    device = await con.devices.get(device_id)
    assert device.id is not None
    streams = await con.templates.templates.datastreams(device.template_id)
    template = await con.session.get(Template, device.template_id)  # may be a parent organization's
    can_control = principal.has(P.DEVICES_EDIT) or (
        principal.has(P.DEVICES_EDIT_OWN) and device.owner_id == principal.user_id
    )
    return AppDeviceDetailOut(
        device.id,
        device.name,
        template.name if template else "",
        device.online,
        can_control,
        [
            DatastreamOut(d.pin, d.name, d.type, d.min, d.max, d.units, _control(d.type, d.min, d.max))
            for d in sorted(streams, key=lambda d: d.pin)
        ],
        await con.templates.mobile.get(device.template_id),
    )


ROUTES = [app_shell, service_worker, manifest, app_session, app_devices, app_device]
