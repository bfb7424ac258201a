"""The automation's shape on the wire and in the database: one condition, ordered actions.

Conditions and actions are msgspec tagged unions (``"type"`` names the kind), each checking
its own invariants (ranges, ``HH:MM`` times, IANA time zones, exactly one of ``device_id`` and
``template_id``, the value a comparison takes). :func:`parse_automation` turns a request body
into an :class:`AutomationIn` or raises the project's ``ValidationError`` with the reason; the
references to other things (devices, templates, tags, webhooks, users) and the per-organization
limits are checked by the service, which knows the caller's scope.

Example::

    {"name": "Pump", "enabled": true, "limit_period_s": 0,
     "condition": {"type": "device_state", "device_id": 7, "pin": 1, "op": "lt", "value": 20,
                   "window": {"from": "06:00", "to": "20:00"}},
     "actions": [{"type": "control", "target": {"device_id": 8}, "pin": 2, "value": "1"},
                 {"type": "wait", "seconds": 600},
                 {"type": "control", "target": {"device_id": 8}, "pin": 2, "value": "0"},
                 {"type": "email", "to": "owner", "subject": "Pump", "body": "{DEVICE_NAME} watered"}]}
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from backend.devices.timezones import zone_for
from backend.errors import ValidationError

HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="a time of day, HH:MM")]
Day = Annotated[int, msgspec.Meta(ge=0, le=6, description="0 is Monday")]
Days = Annotated[list[Day], msgspec.Meta(max_length=7)]
Pin = Annotated[int, msgspec.Meta(ge=0, le=255)]
Id = Annotated[int, msgspec.Meta(ge=1)]
EventCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_ ]{1,50}$")]
TagName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Address = Annotated[str, msgspec.Meta(pattern=r"^[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]{1,190}$", max_length=254)]
MAX_WAIT_S = 86_400
DEVICE_CONDITIONS = frozenset({"device_state", "presence", "event"})
"""Conditions with a trigger device (the one the placeholders, ``owner`` and ``log_event``'s
default refer to)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_tz(tz: str | None) -> None:
    if tz is not None and zone_for(tz) is None:
        raise ValueError(f"unknown time zone {tz!r} (an IANA name such as Europe/Berlin)")


def _check_source(device_id: int | None, template_id: int | None) -> None:
    if (device_id is None) == (template_id is None):
        raise ValueError("give exactly one of device_id and template_id")


class _Condition(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """A condition; ``type`` names the kind."""


class Schedule(_Condition, tag="schedule", kw_only=True):
    """At a time of day, on some days of the week (none: every day)."""

    at: HHMM
    days: Days = []
    tz: str | None = None

    def __post_init__(self) -> None:
        _check_tz(self.tz)


class Interval(_Condition, tag="interval", kw_only=True):
    """Every N minutes."""

    minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)]


class Once(_Condition, tag="once", kw_only=True):
    """Once, at a date and time (in ``tz`` when it carries no offset)."""

    at: datetime
    tz: str | None = None

    def __post_init__(self) -> None:
        _check_tz(self.tz)


class Sun(_Condition, tag="sun", kw_only=True):
    """At sunrise or sunset at a place, shifted by up to three hours."""

    event: Literal["sunrise", "sunset"]
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    offset_minutes: Annotated[int, msgspec.Meta(ge=-180, le=180)] = 0
    days: Days = []
    tz: str | None = None

    def __post_init__(self) -> None:
        _check_tz(self.tz)


class Window(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The hours a device-state condition may fire in (``from`` after ``to`` spans midnight)."""

    from_: HHMM = msgspec.field(name="from")
    to: HHMM
    days: Days = []
    tz: str | None = None

    def __post_init__(self) -> None:
        if self.from_ == self.to:
            raise ValueError("a window's from and to must differ")
        _check_tz(self.tz)


Op = Literal["on", "off", "changed", "gt", "ge", "lt", "le", "eq", "ne", "between"]
_NO_VALUE = frozenset({"on", "off", "changed"})
_NUMBER = frozenset({"gt", "ge", "lt", "le"})


class DeviceState(_Condition, tag="device_state", kw_only=True):
    """A datastream of one device, or of every device of a template, compared with a value."""

    device_id: Id | None = None
    template_id: Id | None = None
    pin: Pin
    op: Op
    value: float | Annotated[str, msgspec.Meta(max_length=255)] | None = None
    value2: float | None = None
    hysteresis: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    window: Window | None = None

    def __post_init__(self) -> None:
        _check_source(self.device_id, self.template_id)
        if self.op in _NO_VALUE:
            if self.value is not None or self.value2 is not None:
                raise ValueError(f"op {self.op!r} takes no value")
        elif self.op == "between":
            if not isinstance(self.value, float) or self.value2 is None:
                raise ValueError("op 'between' takes two numbers, value and value2")
            if self.value > self.value2:
                raise ValueError("value must not be above value2")
        elif self.value2 is not None:
            raise ValueError("value2 is only for op 'between'")
        elif self.op in _NUMBER and not isinstance(self.value, float):
            raise ValueError(f"op {self.op!r} compares with a number")
        elif self.value is None:
            raise ValueError(f"op {self.op!r} needs a value")


class Presence(_Condition, tag="presence", kw_only=True):
    """A device (or any device of a template) went online or offline, for ``after_s`` seconds."""

    device_id: Id | None = None
    template_id: Id | None = None
    online: bool
    after_s: Annotated[int, msgspec.Meta(ge=0, le=86_400)] = 0

    def __post_init__(self) -> None:
        _check_source(self.device_id, self.template_id)


class Event(_Condition, tag="event", kw_only=True):
    """A device (or any device of a template) logged an event with this code."""

    device_id: Id | None = None
    template_id: Id | None = None
    code: EventCode

    def __post_init__(self) -> None:
        _check_source(self.device_id, self.template_id)


class Scene(_Condition, tag="scene", kw_only=True):
    """Run by hand: the console's button or the platform API."""


Condition = Schedule | Interval | Once | Sun | DeviceState | Presence | Event | Scene


class Target(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """Which devices a control action sets: one device, every device of a template, or every
    device with a tag (``{"device_id": 8}``, ``{"template_id": 3}``, ``{"tag": "pumps"}``)."""

    device_id: Id | None = None
    template_id: Id | None = None
    tag: TagName | None = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.device_id, self.template_id, self.tag)) != 1:
            raise ValueError("a target is exactly one of device_id, template_id and tag")


class _Action(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """An action; ``type`` names the kind."""


class Control(_Action, tag="control", kw_only=True):
    """Set a datastream (checked like the HTTP API's update, sent on ``downlink/ds/<name>``)."""

    target: Target
    pin: Pin
    value: Annotated[str, msgspec.Meta(max_length=1024)]


class Email(_Action, tag="email", kw_only=True):
    """An e-mail to addresses, or to the trigger device's owner (``"owner"``)."""

    to: Annotated[list[Address], msgspec.Meta(min_length=1, max_length=20)] | Literal["owner"]
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    body: Annotated[str, msgspec.Meta(max_length=5000)] = ""


class Notify(_Action, tag="notify", kw_only=True):
    """An in-app notification to some users (null: every user of the organization)."""

    user_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=500)] | None = None
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    body: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class Webhook(_Action, tag="webhook", kw_only=True):
    """Fire one of the organization's webhooks."""

    webhook_id: Id


class Wait(_Action, tag="wait", kw_only=True):
    """Wait some seconds (1 s to 24 h), or until a time of day in the automation's zone."""

    seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_WAIT_S)] | None = None
    until: HHMM | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("a wait takes exactly one of seconds and until")


class LogEvent(_Action, tag="log_event", kw_only=True):
    """Log an event on a device (null: the trigger device)."""

    device_id: Id | None = None
    code: EventCode
    description: Annotated[str, msgspec.Meta(max_length=300)] = ""


Action = Control | Email | Notify | Webhook | Wait | LogEvent
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class AutomationIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What a client sends to create an automation or replace one."""

    name: Name
    enabled: bool = True
    condition: Condition
    actions: Annotated[list[Action], msgspec.Meta(min_length=1)]
    limit_period_s: Annotated[int, msgspec.Meta(ge=0, le=31 * 86_400)] = 0

    def __post_init__(self) -> None:
        self.name = self.name.strip()
        if not self.name or _CONTROL.search(self.name):
            raise ValueError("a name is 1 to 100 characters, without control characters")
        kind = type(self.condition).__struct_config__.tag
        if self.limit_period_s and kind != "device_state":
            raise ValueError("limit_period_s is only for device_state conditions")
        if kind not in DEVICE_CONDITIONS:
            for position, action in enumerate(self.actions):
                if _needs_trigger_device(action):
                    raise ValueError(
                        f"action {position + 1} refers to the trigger device, which a {kind} condition has none of"
                    )


def _needs_trigger_device(action: Action) -> bool:
    return (isinstance(action, Email) and action.to == "owner") or (
        isinstance(action, LogEvent) and action.device_id is None
    )


class AutomationOut(msgspec.Struct, kw_only=True):
    """An automation as the APIs show it."""

    id: int
    org_id: int
    name: str
    enabled: bool
    condition: Condition
    actions: list[Action]
    limit_period_s: int
    created_at: datetime
    updated_at: datetime


class StepOut(msgspec.Struct, kw_only=True):
    """One action's outcome in a run."""

    position: int
    action_type: str
    ok: bool
    detail: str
    started_at: datetime
    duration_ms: int


class RunOut(msgspec.Struct, kw_only=True):
    """One run of an automation, with its actions' outcomes."""

    id: int
    automation_id: int
    automation_name: str
    trigger: str
    trigger_device_id: int | None
    trigger_device_name: str | None
    trigger_value: str | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    next_action: int
    resume_at: datetime | None
    steps: list[StepOut]
    resumes: int = 0
    """How often the run was taken up again after its process ended."""
    note: str = ""
    """Why the run was resumed or ``interrupted`` (empty: neither)."""


class RunStartedOut(msgspec.Struct):
    """The run a scene started."""

    run_id: int


def parse_automation(body: bytes | str | dict[str, Any]) -> AutomationIn:
    """A request body as an automation, or a ``ValidationError`` saying what is wrong."""
    try:
        if isinstance(body, dict):
            return msgspec.convert(body, AutomationIn)
        return msgspec.json.decode(body, type=AutomationIn)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationError(f"invalid automation: {exc}") from None


def condition_of(stored: dict[str, Any]) -> Condition:
    """A stored condition (checked when it was saved)."""
    condition: Condition = msgspec.convert(stored, Condition)
    return condition


def actions_of(stored: list[dict[str, Any]]) -> list[Action]:
    """Stored actions (checked when they were saved)."""
    return msgspec.convert(stored, list[Action])


def kind_of(item: _Condition | _Action) -> str:
    """The ``type`` of a condition or action."""
    return str(type(item).__struct_config__.tag)
