"""Wire types of templates, datastreams, events and metadata fields (the import/export document
shape)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
DatastreamName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^/#+\x00]+$")]
EventCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_ ]{1,50}$")]


class DatastreamIn(msgspec.Struct, forbid_unknown_fields=True):
    """A datastream as imported: ``{"pin": "V0", "name": "Temperature", "type": "double", ...}``."""

    pin: Annotated[str, msgspec.Meta(pattern=r"^[vV]\d{1,3}$")]
    name: DatastreamName
    type: Literal["integer", "double", "string", "enum", "location"] = "integer"
    alias: str = ""
    min: float | None = None
    max: float | None = None
    default: str | float | int | None = None
    units: str = ""
    decimals: Annotated[int, msgspec.Meta(ge=0, le=5)] | None = None
    save_raw: bool = False
    sync: bool = False
    enum_values: dict[str, Any] | None = None
    wait_confirmation: bool = False
    """Blynk's "Wait for confirmation from device": the console shows a control's new value as
    pending until the device sends it back."""


EmailAddress = Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")]
MetaFieldRef = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class EventNotify(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Blynk's notification settings of an event: which kinds go out, to whom, how often.

    Recipients: ``owner`` (the device's owner), ``admins`` (the Admins of the device's
    organization), the addresses in the device's metadata fields named in ``meta_fields``
    (Blynk's *Contact* and *Email* fields), and fixed ``addresses``. E-mail goes to all of them;
    in-app notifications to those who are users of the device's organization.
    """

    email: bool = False
    in_app: bool = False
    recipients: list[Literal["owner", "admins"]] = msgspec.field(default_factory=lambda: ["owner"])
    meta_fields: Annotated[list[MetaFieldRef], msgspec.Meta(max_length=5)] = []
    addresses: Annotated[list[EmailAddress], msgspec.Meta(max_length=10)] = []
    limit_period_s: Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)] = 0
    """At most one notification per device and event in this many seconds (0: no limit)."""
    every_nth: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    """Notify on every Nth event of a device (1: every event)."""


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    """An event definition: ``{"code": "overheat", "name": "Overheat", "type": "warning"}``."""

    code: EventCode
    name: Name
    type: Literal["info", "warning", "critical", "content"] = "info"
    description: Annotated[str, msgspec.Meta(max_length=300)] = ""
    notify: EventNotify | None = None
    """Notification settings; None: the event notifies nobody."""


MetaFieldName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^/#+,\x00]+$")]
MetaFieldType = Literal[
    "text",
    "number",
    "contact",
    "switch",
    "device_reference",
    "list",
    "table",
    "imei",
    "iccid",
    "email",
    "image",
    "device_eui",
    "join_eui",
    "application_key",
]


class MetaFieldIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A custom metadata field: ``{"name": "Serial Number", "type": "text", "default": ""}``.

    ``id`` is the field's ``metaFieldId`` (10 and up); kept when the template is updated,
    assigned in document order when absent.
    """

    name: MetaFieldName
    type: MetaFieldType = "text"
    default: str | None = None
    id: Annotated[int, msgspec.Meta(ge=10, le=1_000_000)] | None = None


class TemplateIn(msgspec.Struct, forbid_unknown_fields=True):
    """A template with its datastreams, events and metadata fields."""

    name: Name
    datastreams: list[DatastreamIn] = []
    events: list[EventIn] = []
    id: Annotated[str, msgspec.Meta(pattern=r"^TMPL[A-Za-z0-9]{8}$")] | None = None
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""
    hardware: str = "ESP32"
    connection_type: str = "WI_FI"
    heartbeat_interval: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 45
    offline_ignore_seconds: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 0
    """An offline shorter than this, followed by an online, leaves no timeline entry."""
    gateway_enabled: bool = False
    """Blynk's "Enable for Gateway API": the token of a device of this template, with the MQTT
    user name ``mgmt_device``, logs in a gateway for the device's organization."""
    metadata: list[MetaFieldIn] = []
    raw_retention_days: Annotated[int, msgspec.Meta(ge=1, le=36500)] | None = None
    """Days this template's raw history is kept; None: the server's setting."""
    rollup_retention_days: Annotated[int, msgspec.Meta(ge=1, le=36500)] | None = None
    """Days this template's minute and hour rollups are kept; None: the server's setting."""
