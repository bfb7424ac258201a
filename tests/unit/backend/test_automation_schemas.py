"""The automation's shape (backend/automations/schemas.py): what is accepted, what is refused
and why, and the JSON it is stored and shown as (the engine and the console read that)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from backend.automations.schemas import (
    AutomationIn,
    Control,
    DeviceState,
    Wait,
    actions_of,
    condition_of,
    parse_automation,
)
from backend.errors import ValidationError

WAIT = {"type": "wait", "seconds": 5}


def body(condition: dict[str, Any], actions: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "Pump", "condition": condition, "actions": actions or [WAIT], **extra}


def test_the_issue_example_round_trips_in_the_documented_shape() -> None:
    soil = {
        "type": "device_state",
        "device_id": 7,
        "pin": 1,
        "op": "lt",
        "value": 20,
        "window": {"from": "06:00", "to": "20:00", "days": [], "tz": "Europe/Berlin"},
    }
    actions = [
        {"type": "control", "target": {"device_id": 8}, "pin": 2, "value": "1"},
        {"type": "wait", "seconds": 600},
        {"type": "control", "target": {"device_id": 8}, "pin": 2, "value": "0"},
        {"type": "email", "to": "owner", "subject": "Pump", "body": "{DEVICE_NAME}"},
    ]
    parsed = parse_automation(msgspec.json.encode(body(soil, actions)))
    assert isinstance(parsed.condition, DeviceState) and parsed.condition.value == 20.0
    assert isinstance(parsed.actions[0], Control) and isinstance(parsed.actions[1], Wait)
    stored = msgspec.to_builtins(parsed)
    assert stored["condition"]["window"]["from"] == "06:00" and stored["condition"]["type"] == "device_state"
    assert stored["actions"][0] == {"type": "control", "target": {"device_id": 8}, "pin": 2, "value": "1"}
    assert condition_of(stored["condition"]) == parsed.condition
    assert actions_of(stored["actions"]) == parsed.actions


@pytest.mark.parametrize(
    "condition",
    [
        {"type": "schedule", "at": "07:30", "days": [0, 6], "tz": "America/New_York"},
        {"type": "interval", "minutes": 1440},
        {"type": "once", "at": "2027-05-01T10:00:00"},
        {"type": "sun", "event": "sunset", "offset_minutes": -180, "lat": 52.5, "lon": 13.4},
        {"type": "device_state", "template_id": 3, "pin": 0, "op": "eq", "value": "open"},
        {"type": "device_state", "device_id": 3, "pin": 0, "op": "between", "value": 1, "value2": 2.5},
        {"type": "device_state", "device_id": 3, "pin": 0, "op": "changed", "hysteresis": 0.5},
        {"type": "presence", "device_id": 3, "online": False, "after_s": 86400},
        {"type": "event", "template_id": 3, "code": "low_battery"},
        {"type": "scene"},
    ],
)
def test_every_condition_kind_is_accepted(condition: dict[str, Any]) -> None:
    assert msgspec.to_builtins(parse_automation(body(condition)).condition)["type"] == condition["type"]


@pytest.mark.parametrize(
    ("condition", "actions", "reason"),
    [
        ({"type": "schedule", "at": "24:00"}, None, "condition.at"),
        ({"type": "schedule", "at": "7:30"}, None, "condition.at"),
        ({"type": "schedule", "at": "07:30", "days": [7]}, None, "condition.days"),
        ({"type": "schedule", "at": "07:30", "tz": "Mars/Olympus"}, None, "unknown time zone"),
        ({"type": "schedule", "at": "07:30", "tz": "../../etc/passwd"}, None, "unknown time zone"),
        ({"type": "interval", "minutes": 0}, None, "condition.minutes"),
        ({"type": "sun", "event": "noon", "lat": 0, "lon": 0}, None, "condition.event"),
        ({"type": "sun", "event": "sunrise", "offset_minutes": 181, "lat": 0, "lon": 0}, None, "offset_minutes"),
        ({"type": "sun", "event": "sunrise", "lat": 91, "lon": 0}, None, "condition.lat"),
        ({"type": "device_state", "pin": 1, "op": "on"}, None, "exactly one of device_id and template_id"),
        ({"type": "device_state", "device_id": 1, "template_id": 2, "pin": 1, "op": "on"}, None, "exactly one"),
        ({"type": "device_state", "device_id": 1, "pin": 1, "op": "on", "value": 1}, None, "takes no value"),
        ({"type": "device_state", "device_id": 1, "pin": 1, "op": "gt", "value": "x"}, None, "compares with a number"),
        ({"type": "device_state", "device_id": 1, "pin": 1, "op": "eq"}, None, "needs a value"),
        ({"type": "device_state", "device_id": 1, "pin": 1, "op": "between", "value": 1}, None, "two numbers"),
        ({"type": "device_state", "device_id": 1, "pin": 1, "op": "between", "value": 3, "value2": 1}, None, "above"),
        ({"type": "device_state", "device_id": 1, "pin": 1, "op": "lt", "value": 1, "value2": 2}, None, "value2"),
        ({"type": "device_state", "device_id": 1, "pin": 1, "op": "on", "hysteresis": -1}, None, "hysteresis"),
        ({"type": "device_state", "device_id": 1, "pin": 256, "op": "on"}, None, "condition.pin"),
        (
            {"type": "device_state", "device_id": 1, "pin": 1, "op": "on", "window": {"from": "06:00", "to": "06:00"}},
            None,
            "must differ",
        ),
        ({"type": "presence", "template_id": 1, "online": True, "after_s": 86401}, None, "after_s"),
        ({"type": "event", "device_id": 1, "code": "no-dashes"}, None, "condition.code"),
        ({"type": "scene", "extra": 1}, None, "extra"),
        ({"type": "sometimes"}, None, "condition.type"),
        ({"type": "scene"}, [{"type": "wait", "seconds": 0}], "seconds"),
        ({"type": "scene"}, [{"type": "wait", "seconds": 86401}], "seconds"),
        ({"type": "scene"}, [{"type": "wait"}], "exactly one of seconds and until"),
        ({"type": "scene"}, [{"type": "wait", "seconds": 5, "until": "10:00"}], "exactly one of seconds and until"),
        ({"type": "scene"}, [{"type": "control", "target": {}, "pin": 1, "value": "1"}], "exactly one of device_id"),
        (
            {"type": "scene"},
            [{"type": "control", "target": {"device_id": 1, "tag": "t"}, "pin": 1, "value": "1"}],
            "exactly one of device_id",
        ),
        ({"type": "scene"}, [{"type": "email", "to": ["not-an-address"], "subject": "s"}], "actions[0].to"),
        ({"type": "scene"}, [{"type": "email", "to": "owner", "subject": "s"}], "refers to the trigger device"),
        ({"type": "schedule", "at": "06:00"}, [{"type": "log_event", "code": "x"}], "refers to the trigger device"),
        ({"type": "scene"}, [{"type": "notify", "user_ids": [], "title": "t"}], "user_ids"),
        ({"type": "scene"}, [{"type": "webhook", "webhook_id": 0}], "webhook_id"),
        ({"type": "scene"}, [{"type": "teleport"}], "actions[0].type"),
    ],
)
def test_what_breaks_a_rule_is_refused_with_where(
    condition: dict[str, Any], actions: list[dict[str, Any]] | None, reason: str
) -> None:
    with pytest.raises(ValidationError, match="invalid automation") as refused:
        parse_automation(body(condition, actions))
    assert reason in refused.value.message


def test_no_actions_bad_names_and_a_limit_period_off_device_state_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"length >= 1 - at `\$.actions`"):
        parse_automation({"name": "x", "condition": {"type": "scene"}, "actions": []})
    for name in ("", "   ", "a\x00b", "x" * 101):
        with pytest.raises(ValidationError, match="name"):
            parse_automation({"name": name, "condition": {"type": "scene"}, "actions": [WAIT]})
    with pytest.raises(ValidationError, match="limit_period_s is only for device_state"):
        parse_automation(body({"type": "scene"}, limit_period_s=60))
    with pytest.raises(ValidationError, match="Expected `object`"):
        parse_automation(b"[1]")
    with pytest.raises(ValidationError, match="invalid automation"):
        parse_automation(b"{not json")


def test_names_are_trimmed_and_a_device_state_takes_a_limit_period() -> None:
    parsed = parse_automation(
        body({"type": "device_state", "device_id": 1, "pin": 1, "op": "on"}, name="  Pump  ", limit_period_s=60)
    )
    assert isinstance(parsed, AutomationIn) and parsed.name == "Pump" and parsed.limit_period_s == 60
