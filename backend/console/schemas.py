"""Wire types of the console's JSON routes."""

from __future__ import annotations

from datetime import datetime

import msgspec

from backend.console.dashboards import Widget
from backend.console.mobile import MobileWidget


class TemplateOut(msgspec.Struct):
    id: int
    public_id: str
    org_id: int
    name: str
    description: str
    hardware: str
    connection_type: str
    heartbeat_interval: int
    offline_ignore_seconds: int
    gateway_enabled: bool = False


class TemplateCreateIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    org_id: int | None = None
    description: str = ""
    hardware: str = "ESP32"
    connection_type: str = "WI_FI"
    heartbeat_interval: int = 45
    offline_ignore_seconds: int = 0
    gateway_enabled: bool = False


class DashboardOut(msgspec.Struct):
    template_id: int
    widgets: list[Widget]


class MobileDashboardOut(msgspec.Struct):
    template_id: int
    widgets: list[MobileWidget]


class DeviceCreateIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    template_id: int
    org_id: int | None = None


class DeviceCreatedOut(msgspec.Struct):
    id: int
    name: str
    token: str


class TokenOut(msgspec.Struct):
    token: str


class WriteIn(msgspec.Struct, forbid_unknown_fields=True):
    value: str


class WrittenOut(msgspec.Struct):
    pin: int
    value: str


class MetaIn(msgspec.Struct, forbid_unknown_fields=True):
    """A metadata value to set: the field's name and the value as text."""

    name: str
    value: str


class MetaOut(msgspec.Struct):
    name: str
    value: str


class LineOut(msgspec.Struct):
    ts: int
    value: str


class LinesOut(msgspec.Struct):
    """A terminal's backlog: the newest values of a string datastream, oldest first."""

    pin: int
    lines: list[LineOut]


class LatestOut(msgspec.Struct):
    pin: int
    value: str
    ts: int


class ValuesOut(msgspec.Struct):
    values: list[LatestOut]
    properties: dict[str, dict[str, str]]
    online: bool


class SeriesOut(msgspec.Struct):
    """Chart data: bucket starts (ms) with min, max and average; ``source`` is the table read."""

    source: str
    width_ms: float
    start: int
    end: int
    t: list[int]
    min: list[float]
    max: list[float]
    avg: list[float]


class TimelineOut(msgspec.Struct):
    ts: datetime
    kind: str
    code: str | None
    type: str | None
    description: str | None


class PingOut(msgspec.Struct):
    """A ping's round trip as the broker measured it."""

    rtt_ms: float


class DeviceInfoOut(msgspec.Struct):
    """A device's answer to Request info: its ``info/mcu`` as stored, and when it arrived."""

    received_at: datetime
    fw_version: str | None
    fw_build: str | None
    fw_type: str | None
    board_template_id: str | None
    blynk_version: str | None
    rx_buffer: int | None


class SentOut(msgspec.Struct):
    """A device command that was sent (or done, for ``delete``)."""

    sent: str


class ImageOut(msgspec.Struct):
    """An image of an organization's library; ``url`` serves its bytes."""

    id: int
    org_id: int
    name: str
    content_type: str
    size: int
    url: str
    created: int
    """Epoch milliseconds."""
