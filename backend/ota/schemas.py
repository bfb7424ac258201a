"""Wire types of the Blynk.Air JSON API (``/api/ota/...``)."""

from __future__ import annotations

from typing import Any

import msgspec


class ShipmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new shipment. ``target``: ``{"kind": "template", "template_id": N}``,
    ``{"kind": "devices", "device_ids": [...]}``, ``{"kind": "org", "org_id": N}`` or
    ``{"kind": "tag", "tag": "..."}``. ``pacing``: ``{"kind": "constant", "per_minute": N}`` or
    ``{"kind": "exponential", "start": N, "factor": 2, "success_percent": 80}``. ``abort``:
    ``{"failure_percent": P, "min_sample": N}`` or null."""

    name: str
    firmware_id: int
    target: dict[str, Any]
    apply_mode: str = "lower_version"
    preferred_time: str = "any"
    attempts_limit: int = 3
    attempts_period_hours: float = 24.0
    pacing: dict[str, Any] = msgspec.field(default_factory=lambda: {"kind": "constant", "per_minute": 100})
    abort: dict[str, Any] | None = None
    device_timeout_seconds: int = 600


class Firmware(msgspec.Struct):
    """An uploaded image."""

    id: int
    filename: str
    size: int
    sha256: str
    md5: str
    signature: str
    fw_type: str | None
    version: str | None
    build: str | None
    blynk_version: str | None
    info: dict[str, str]
    created_at: str


class Shipment(msgspec.Struct):
    """A shipment with its device counts per status (``counts`` by status code; ``labels``
    gives Blynk's names; ``waiting`` are targeted devices not looked at yet)."""

    id: int
    name: str
    firmware_id: int
    target: dict[str, Any]
    apply_mode: str
    preferred_time: str
    attempts_limit: int
    attempts_period_hours: float
    pacing: dict[str, Any]
    abort: dict[str, Any] | None
    device_timeout_seconds: int
    state: str
    state_reason: str
    created_at: str
    ended_at: str | None
    counts: dict[str, int]
    waiting: int


class ShipmentDevice(msgspec.Struct):
    """One device's status in a shipment."""

    device_id: int
    device_name: str
    status: str
    label: str
    attempts: int
    bytes_served: int
    detail: str
    updated_at: str
