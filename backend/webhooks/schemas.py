"""Webhooks on the wire (the console's JSON API).

Example of a webhook as written::

    {"name": "Soil to the farm log", "trigger": "template_datastream", "template_id": 3, "pin": 1,
     "method": "POST", "url": "https://farm.example/log", "headers": {"Authorization": "Bearer x"},
     "body_kind": "json", "body": "{\\"device\\": \\"{DEVICE_NAME}\\", \\"soil\\": {TRIGGER_VALUE}}"}

``trigger`` is one of ``template_datastream`` (``template_id``, and ``pin`` or none for any
datastream), ``device_datastream`` (``device_id``, ``pin`` or none), ``first_connection``,
``device_activated``, ``user_added`` or ``manual`` (only automations and "send test" fire it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from backend.errors import ValidationError
from backend.webhooks.requests import MAX_BODY_BYTES

Trigger = Literal[
    "template_datastream", "device_datastream", "first_connection", "device_activated", "user_added", "manual"
]
Method = Literal["GET", "POST", "PUT", "DELETE"]
Kind = Literal["form", "json", "plain"]
Pin = Annotated[int, msgspec.Meta(ge=0, le=255)]
Id = Annotated[int, msgspec.Meta(ge=1)]
HeaderValue = Annotated[str, msgspec.Meta(max_length=1024)]


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A webhook as created or replaced."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    enabled: bool = True
    trigger: Trigger
    template_id: Id | None = None
    device_id: Id | None = None
    pin: Pin | None = None
    """The datastream's pin; none = any datastream (datastream triggers only)."""
    method: Method = "POST"
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    headers: dict[str, HeaderValue] = msgspec.field(default_factory=dict)
    body_kind: Kind = "json"
    body: Annotated[str, msgspec.Meta(max_length=MAX_BODY_BYTES)] = ""

    def __post_init__(self) -> None:
        if self.trigger == "template_datastream" and (self.template_id is None or self.device_id is not None):
            raise ValueError("a template datastream trigger names template_id (and no device_id)")
        if self.trigger == "device_datastream" and (self.device_id is None or self.template_id is not None):
            raise ValueError("a device datastream trigger names device_id (and no template_id)")
        if self.trigger not in ("template_datastream", "device_datastream") and (
            self.template_id is not None or self.device_id is not None or self.pin is not None
        ):
            raise ValueError(f"a {self.trigger} trigger names no template, device or pin")


class WebhookOut(msgspec.Struct, kw_only=True):
    """A webhook as stored; ``secret`` is shown to those who may edit webhooks only."""

    id: int
    org_id: int
    name: str
    enabled: bool
    trigger: str
    template_id: int | None
    device_id: int | None
    pin: int | None
    method: str
    url: str
    headers: dict[str, str]
    body_kind: str
    body: str
    secret: str | None
    failures: int
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class DeliveryOut(msgspec.Struct, kw_only=True):
    """One entry of a webhook's delivery log."""

    id: int
    at: datetime
    trigger: str
    request: str
    ok: bool
    refused: bool
    status: int | None
    response_head: str
    error: str | None
    attempt: int
    duration_ms: int


class TestOut(msgspec.Struct, kw_only=True):
    """How a "send test" went."""

    ok: bool
    refused: bool
    status: int | None
    error: str | None
    attempts: int
    response_head: str
    duration_ms: int


def parse_webhook(body: bytes | dict[str, Any]) -> WebhookIn:
    """A request body as a webhook, or a ``ValidationError`` saying what is wrong."""
    try:
        if isinstance(body, dict):
            return msgspec.convert(body, WebhookIn)
        return msgspec.json.decode(body, type=WebhookIn)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationError(f"invalid webhook: {exc}") from None
