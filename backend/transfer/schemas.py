"""The import/export document: templates with datastreams, events, metadata fields, web
and mobile dashboards, and devices.

Automations are not part of it yet; when they come, they become a field of :class:`Document`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from backend.console.dashboards import DashboardIn
from backend.console.mobile import MobileDashboardIn
from backend.templates.schemas import TemplateIn


class DeviceIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A device to create: its template by name, optionally a fixed token, and optionally its
    tags (``backend.devices.tags`` rules; absent leaves an existing device's tags as they are,
    ``[]`` removes them; an export leaves it out for a device without tags)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    template: str
    token: Annotated[str, msgspec.Meta(pattern=r"^[-_a-zA-Z0-9]{32}$")] | None = None
    tags: list[str] | None = None


class TemplateDoc(TemplateIn):
    """A template as the document carries it: the template itself and its web dashboard.

    ``web_dashboard`` is what the console's dashboard editor saves (``{"widgets": [...]}``) and
    is checked the same way. Absent, an existing template keeps its dashboard (widgets bound to
    a datastream the document removes go, as in the console); ``{"widgets": []}`` empties it.
    An export always writes it, so importing an export reproduces the template exactly.
    ``mobile_dashboard`` is the same for the mobile dashboard (the template editor's "Mobile
    dashboard" tab, shown in the app).
    """

    web_dashboard: DashboardIn | None = None
    mobile_dashboard: MobileDashboardIn | None = None


class Document(msgspec.Struct, forbid_unknown_fields=True):
    """What ``openblynk import`` reads and ``openblynk export`` writes."""

    templates: list[TemplateDoc] = []
    devices: list[DeviceIn] = []


class DeviceOut(msgspec.Struct):
    """One imported device, as printed by ``openblynk import``."""

    name: str
    id: int
    token: str
    template: str
    template_id: str
    created: bool


class ImportResult(msgspec.Struct):
    """The answer of ``openblynk import``."""

    devices: list[DeviceOut]


def decode_document(raw: bytes) -> Document:
    """Parse and check an import document; errors name the offending field."""
    return msgspec.json.decode(raw, type=Document)
