"""Datastream value checking: parsing, clamping, types and pins."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import backend.templates.values as values_module
from backend.errors import ValidationError
from backend.templates.values import (
    DatastreamPin,
    DatastreamSpec,
    DatastreamType,
    TooLongError,
    WrongTypeError,
    checked_value,
    json_of,
    parse_value,
    shown_text,
)

TEMP = DatastreamSpec(pin=0, name="Temperature", type=DatastreamType.DOUBLE, min=-40, max=85)
POWER = DatastreamSpec(pin=1, name="Power", type=DatastreamType.INTEGER, min=0, max=1)
LABEL = DatastreamSpec(pin=2, name="Label", type=DatastreamType.STRING)
WHERE = DatastreamSpec(pin=3, name="Where", type=DatastreamType.LOCATION)


@pytest.mark.parametrize(
    ("spec", "raw", "text", "number"),
    [
        (TEMP, "23.5", "23.5", 23.5),
        (TEMP, " 23.50 ", "23.5", 23.5),
        (TEMP, "100", "85.0", 85.0),  # clamped to max
        (TEMP, "-1e9", "-40.0", -40.0),  # clamped to min
        (POWER, "1", "1", 1.0),
        (POWER, "7", "1", 1.0),
        (POWER, "-3", "0", 0.0),
        (POWER, "1.0", "1", 1.0),
        (LABEL, "hello world", "hello world", None),
    ],
)
def test_parse_and_clamp(spec: DatastreamSpec, raw: str, text: str, number: float | None) -> None:
    value = parse_value(spec, raw)
    assert (value.text, value.number) == (text, number)


@pytest.mark.parametrize(
    ("spec", "raw"),
    [
        (TEMP, "abc"),
        (TEMP, "nan"),
        (TEMP, "inf"),
        (TEMP, ""),
        (POWER, "1.5"),
        (POWER, "on"),
        (WHERE, "1"),
        (WHERE, "200,10"),
    ],
)
def test_wrong_type_is_refused(spec: DatastreamSpec, raw: str) -> None:
    with pytest.raises(WrongTypeError):
        parse_value(spec, raw)


def test_string_limit_is_in_bytes() -> None:
    assert parse_value(LABEL, "é" * 512).text == "é" * 512
    with pytest.raises(TooLongError):
        parse_value(LABEL, "é" * 513)


def test_location_accepts_nul_and_comma_and_gives_lon_lat_json() -> None:
    assert parse_value(WHERE, "24.1\x0056.9").json == [24.1, 56.9]
    stored = parse_value(WHERE, "24.1,56.9")
    assert json_of(WHERE, stored.text) == [24.1, 56.9]


def test_json_form_keeps_types() -> None:
    assert json_of(POWER, "1") == 1 and isinstance(json_of(POWER, "1"), int)
    assert json_of(TEMP, "23.5") == 23.5
    assert json_of(LABEL, "x") == "x"


@pytest.mark.parametrize("text", ["V0", "v255", "V17"])
def test_pins(text: str) -> None:
    assert str(DatastreamPin.parse(text)) == text.upper()


@pytest.mark.parametrize("text", ["V256", "D1", "1", "V", "V-1", "VV1"])
def test_bad_pins(text: str) -> None:
    with pytest.raises(ValidationError):
        DatastreamPin.parse(text)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_double_round_trip_is_exact_and_in_range(number: float) -> None:
    value = parse_value(TEMP, repr(number))
    assert -40 <= float(value.text) <= 85
    assert float(value.text) == value.number


COUNT = DatastreamSpec(pin=4, name="Count", type=DatastreamType.INTEGER)  # no limits
MODE = DatastreamSpec(pin=5, name="Mode", type=DatastreamType.ENUM, min=0, max=3)
SPECS = [TEMP, POWER, LABEL, WHERE, COUNT, MODE]
PAYLOADS = [
    b"23.5",
    b" 23.50 ",
    b"100",
    b"-1e9",
    b"1",
    b"7",
    b"-3",
    b"1.0",
    b"1_000",
    b"0x10",
    b"",
    b" ",
    b"nan",
    b"inf",
    b"-inf",
    b"1e400",
    b"9" * 400,
    b"abc",
    b"\xff",
    b"\xc3\xa9",
    "\u0663".encode(),
    b"24.1\x0056.9",
    b"24.1,56.9",
    b"\t42\n",
    b"+5",
    b"-0",
    b"-0.0",
    "é".encode() * 513,
]


def _general(spec: DatastreamSpec, payload: bytes) -> tuple[str, float | None] | str:
    """What checked_value's general branch makes of a payload's text: (text, number), or why
    it refuses it."""
    try:
        shown, number = values_module._checked_text(spec, payload.decode("utf-8"), 1024)
    except UnicodeDecodeError:
        return "value is not UTF-8 text"
    except ValidationError as exc:
        return exc.message
    return shown_text(shown), number


def _checked(spec: DatastreamSpec, payload: bytes) -> tuple[str, float | None] | str:
    """checked_value of the payload, with the text of a Double made, as its readers do."""
    try:
        shown, number = checked_value(spec, payload)
    except ValidationError as exc:
        return exc.message
    assert isinstance(shown, str) != (spec.type is DatastreamType.DOUBLE)  # only a Double waits as a number
    return shown_text(shown), number


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_fast_branch_agrees_with_the_general_one(spec: DatastreamSpec, payload: bytes) -> None:
    """A payload the fast branch reads gives what its text gives (refusals included)."""
    checked = _checked(spec, payload)
    assert checked == _general(spec, payload)
    assert type(checked[1]) is type(_general(spec, payload)[1])


@pytest.mark.parametrize(
    ("spec", "payload"),
    [(TEMP, b"23.5"), (TEMP, b"\t42\n"), (COUNT, b"7"), (COUNT, b"-3"), (MODE, b"2"), (LABEL, b"abc")],
)
def test_common_payloads_take_the_fast_branch(
    spec: DatastreamSpec, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def general(*args: object) -> None:
        raise AssertionError(f"{payload!r} for {spec.name} should not need the general branch")

    monkeypatch.setattr(values_module, "_checked_text", general)
    checked_value(spec, payload)


@given(
    spec=st.sampled_from(SPECS),
    payload=st.one_of(
        st.binary(max_size=12),
        st.floats().map(lambda f: repr(f).encode()),
        st.integers().map(lambda i: str(i).encode()),
        st.text(max_size=12).map(str.encode),
    ),
)
def test_the_fast_branch_never_disagrees(spec: DatastreamSpec, payload: bytes) -> None:
    assert _checked(spec, payload) == _general(spec, payload)


def test_integers_no_double_can_hold_are_refused_not_crashed() -> None:
    with pytest.raises(WrongTypeError, match="400 digits"):
        parse_value(COUNT, "9" * 400)
