"""batch_ds and timestamped_batch parsing: JSON types against datastream types, the time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.errors import ValidationError
from backend.ingest.payloads import in_window, json_value_text, parse_batch_ds, parse_timestamped
from backend.templates.values import DatastreamSpec, DatastreamType

T = DatastreamType
SPECS = {
    s.name: s
    for s in (
        DatastreamSpec(0, "Temperature", T.DOUBLE),
        DatastreamSpec(1, "Power", T.INTEGER),
        DatastreamSpec(2, "Label", T.STRING),
        DatastreamSpec(3, "Where", T.LOCATION),
        DatastreamSpec(4, "Mode", T.ENUM),
    )
}
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("Temperature", 21.5, "21.5"),
        ("Temperature", 3, "3"),
        ("Power", 1, "1"),
        ("Power", True, "1"),
        ("Power", False, "0"),
        ("Mode", 2, "2"),
        ("Label", "hi", "hi"),
        ("Where", [24.1, 56.9], "24.1\x0056.9"),
    ],
)
def test_json_types_that_fit(name: str, value: object, text: str) -> None:
    assert json_value_text(SPECS[name], value) == text


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("Temperature", "21", "Temperature (double) expects a number, got a JSON string"),
        ("Temperature", True, "Temperature (double) expects a number, got a JSON boolean"),
        ("Power", "1", "Power (integer) expects a number or true/false, got a JSON string"),
        ("Label", 5, "Label (string) expects a string, got a JSON number"),
        ("Where", [1, 2, 3], "Where (location) expects [lon, lat], got a JSON array"),
        ("Where", ["1", "2"], "Where (location) expects [lon, lat], got a JSON array"),
        ("Label", None, "Label (string) expects a string, got a JSON null"),
    ],
)
def test_json_types_that_do_not_fit(name: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        json_value_text(SPECS[name], value)
    assert err.value.message == message


def test_batch_keeps_good_entries_and_reports_bad_ones() -> None:
    out = parse_batch_ds(b'{"Temperature": 20.5, "Power": "on", "Nope": 1, "Label": "x"}', SPECS)
    assert [(s.name, t) for s, t in out.good] == [("Temperature", "20.5"), ("Label", "x")]
    assert out.errors == [
        "Power (integer) expects a number or true/false, got a JSON string",
        "no datastream named 'Nope'",
    ]


@pytest.mark.parametrize(
    ("payload", "start"),
    [(b"[1, 2]", "expected a JSON object"), (b"{nope", "not valid JSON"), (b"\xff", "not valid JSON")],
)
def test_batch_that_is_not_an_object(payload: bytes, start: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_batch_ds(payload, SPECS)
    assert err.value.message.startswith(start)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def test_timestamped_window_and_bad_points() -> None:
    inside = NOW - timedelta(days=29)
    payload = (
        f"[[{ms(inside)}, 1.5], [{ms(NOW - timedelta(days=31))}, 2], [{ms(NOW + timedelta(days=31))}, 3], "
        f'[{ms(NOW)}, "x"], [5], [{ms(NOW + timedelta(days=1))}, 4]]'
    ).encode()
    out = parse_timestamped(payload, SPECS["Temperature"], NOW, timedelta(days=30))
    assert [(p[0], p[1]) for p in out.points] == [(inside, "1.5"), (NOW + timedelta(days=1), "4")]
    assert (out.out_of_window, out.bad) == (2, 2)
    assert out.first_error == "Temperature (double) expects a number, got a JSON string"


def test_timestamped_must_be_an_array() -> None:
    with pytest.raises(ValidationError):
        parse_timestamped(b'{"a": 1}', SPECS["Temperature"], NOW)


def test_window_edges() -> None:
    month = timedelta(days=30)
    assert in_window(NOW - month, NOW, month) and in_window(NOW + month, NOW, month)
    assert not in_window(NOW - month - timedelta(milliseconds=1), NOW, month)
    assert not in_window(NOW + month + timedelta(milliseconds=1), NOW, month)
