"""Datastream values: pins, types, parsing, clamping and formatting.

A value travels as text (MQTT payloads, HTTP query strings). :func:`checked_value`, the one
parser, checks it against its datastream and gives the canonical text (what devices and the
HTTP API get back) and the number for history (None for strings); :func:`parse_value` makes a
:class:`Value` of them, with the JSON form.
Out-of-range numbers are clamped to min/max; a wrong type is refused, as Blynk does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from backend.errors import ValidationError

MULTI_SEPARATOR = "\x00"  # Blynk separates the items of a multi-value payload with NUL
DB_SEPARATOR = "\x1f"  # PostgreSQL text cannot hold NUL; stored values use the unit separator


def db_text(text: str) -> str:
    """A wire value as stored in PostgreSQL (NUL separators become U+001F)."""
    return text.replace(MULTI_SEPARATOR, DB_SEPARATOR)


def wire_text(text: str) -> str:
    """A stored value back in its wire form."""
    return text.replace(DB_SEPARATOR, MULTI_SEPARATOR)


_PIN_RE = re.compile(r"^[vV](\d{1,3})$")


class DatastreamType(StrEnum):
    """The datastream data types openblynk knows."""

    INTEGER = "integer"
    DOUBLE = "double"
    STRING = "string"
    ENUM = "enum"
    LOCATION = "location"


_DOUBLE, _INTEGER, _ENUM, _STRING = (
    DatastreamType.DOUBLE,
    DatastreamType.INTEGER,
    DatastreamType.ENUM,
    DatastreamType.STRING,
)  # module globals: read faster than the class's


@dataclass(frozen=True, slots=True)
class DatastreamPin:
    """A virtual pin V0..V255."""

    number: int

    def __post_init__(self) -> None:
        if not 0 <= self.number <= 255:
            raise ValidationError(f"pin must be V0..V255, not V{self.number}")

    @classmethod
    def parse(cls, text: str) -> DatastreamPin:
        """Parse ``V5`` or ``v5``; raises ValidationError otherwise."""
        match = _PIN_RE.match(text.strip())
        if not match:
            raise ValidationError(f"pin must look like V0..V255, not {text!r}")
        return cls(int(match[1]))

    def __str__(self) -> str:
        return f"V{self.number}"


@dataclass(frozen=True, slots=True)
class DatastreamSpec:
    """What value checking needs to know of a datastream (a light copy of the table row)."""

    pin: int
    name: str
    type: DatastreamType
    min: float | None = None
    max: float | None = None
    default_value: str | None = None
    sync: bool = False
    save_raw: bool = False
    template_id: int = 0
    """The template the datastream belongs to (what ``DeviceSignals`` watches by)."""


@dataclass(frozen=True, slots=True)
class Value:
    """A checked value: canonical text, number for history (or None), and JSON form."""

    text: str
    number: float | None
    json: Any


class WrongTypeError(ValidationError):
    """The value does not fit the datastream's type."""


class TooLongError(ValidationError):
    """A string value is longer than the limit."""


def checked_value(
    spec: DatastreamSpec, raw: str | bytes, max_string_bytes: int = 1024
) -> tuple[str | float, float | None]:
    """Check a value against its datastream: parse, clamp and format it; raises
    :class:`ValidationError` (:class:`WrongTypeError`, :class:`TooLongError`) when it does not
    fit. ``raw`` is text, or an MQTT payload (bytes, which must be UTF-8 text).

    ``(shown, number)``: the number for history (None for strings and locations) and the
    canonical text (what devices and the HTTP API get back), except that a Double's is its
    number, which :func:`shown_text` formats when it is read (most values are never read as
    text, and formatting a double costs as much as reading it).

    The common values, numbers and strings, take a fast branch: ``float`` and ``int`` read
    text and ASCII bytes directly, ignoring surrounding whitespace as the general branch's
    ``strip`` does, and refuse any byte outside ASCII, so a payload they accept reads as its
    text does. Anything else takes the general branch, which says why a value is refused.
    """
    kind = spec.type
    if kind is _DOUBLE:
        try:
            real = float(raw)
        except ValueError:
            pass
        else:
            if real - real == 0.0:  # not inf or nan (math.isfinite costs a call more)
                low, high = spec.min, spec.max
                if low is not None and real < low:
                    real = low
                elif high is not None and real > high:
                    real = high
                return real, real
    elif kind is _INTEGER or kind is _ENUM:
        try:
            whole = int(raw)
        except ValueError:  # also "1.0", which the general branch takes
            pass
        else:
            clamped = int(_clamp(spec, whole))
            return str(clamped), _int_number(spec, clamped)
    elif kind is _STRING and type(raw) is bytes and len(raw) <= max_string_bytes:
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError:
            pass
    return _checked_text(spec, raw if isinstance(raw, str) else _utf8(raw), max_string_bytes)


def _utf8(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("value is not UTF-8 text") from None


def _checked_text(spec: DatastreamSpec, raw: str, max_string_bytes: int) -> tuple[str | float, float | None]:
    """:func:`checked_value`'s general branch."""
    raw = raw.strip() if spec.type is not DatastreamType.STRING else raw
    if spec.type in (DatastreamType.INTEGER, DatastreamType.ENUM):
        clamped = int(_clamp(spec, _parse_int(spec, raw)))
        return str(clamped), _int_number(spec, clamped)
    if spec.type is DatastreamType.DOUBLE:
        real = _clamp(spec, _parse_float(spec, raw))
        return real, real
    if spec.type is DatastreamType.LOCATION:
        return _parse_location(spec, raw), None
    if len(raw.encode()) > max_string_bytes:
        raise TooLongError(f"value of {spec.name} is longer than {max_string_bytes} bytes")
    return raw, None


def parse_value(spec: DatastreamSpec, raw: str | bytes, *, max_string_bytes: int = 1024) -> Value:
    """:func:`checked_value` as a :class:`Value`: its text made, and its JSON form."""
    shown, number = checked_value(spec, raw, max_string_bytes)
    text = shown_text(shown)
    kind = spec.type
    json: Any
    if kind is _INTEGER or kind is _ENUM:
        json = int(text)
    elif kind is _DOUBLE:
        json = number
    elif kind is DatastreamType.LOCATION:
        json = [float(part) for part in text.split(MULTI_SEPARATOR)]
    else:
        json = text
    return Value(text, number, json)


def shown_text(shown: str | float) -> str:
    """The text of a value as :func:`checked_value` gives it (a Double's number, formatted)."""
    return shown if isinstance(shown, str) else format_double(shown)


def format_double(number: float) -> str:
    """Shortest text that reads back as the same double (``23.5``, ``100.0``)."""
    return repr(float(number))


def json_of(spec: DatastreamSpec, text: str) -> Any:
    """The JSON form of a stored canonical text value."""
    try:
        return parse_value(spec, text, max_string_bytes=1 << 30).json
    except ValidationError:
        return text


def _parse_int(spec: DatastreamSpec, raw: str) -> float:
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        raise WrongTypeError(f"{spec.name} expects an integer, got {raw[:40]!r}") from None
    if not math.isfinite(number) or not number.is_integer():
        raise WrongTypeError(f"{spec.name} expects an integer, got {raw[:40]!r}")
    return number


def _int_number(spec: DatastreamSpec, whole: int) -> float:
    """An integer value as history's number; refused when no double can hold it."""
    try:
        return float(whole)
    except OverflowError:
        raise WrongTypeError(f"{spec.name} expects an integer, got one of {len(str(abs(whole)))} digits") from None


def _parse_float(spec: DatastreamSpec, raw: str) -> float:
    try:
        number = float(raw)
    except ValueError:
        raise WrongTypeError(f"{spec.name} expects a number, got {raw[:40]!r}") from None
    if not math.isfinite(number):
        raise WrongTypeError(f"{spec.name} expects a finite number, got {raw[:40]!r}")
    return number


def _clamp(spec: DatastreamSpec, number: float) -> float:
    if spec.min is not None and number < spec.min:
        return spec.min
    if spec.max is not None and number > spec.max:
        return spec.max
    return number


def _parse_location(spec: DatastreamSpec, raw: str) -> str:
    parts = [p for p in re.split(r"[\x00,]", raw) if p.strip()]
    if len(parts) != 2:
        raise WrongTypeError(f"{spec.name} expects a location 'lon,lat', got {raw[:40]!r}")
    try:
        lon, lat = (float(p) for p in parts)
    except ValueError:
        raise WrongTypeError(f"{spec.name} expects a location 'lon,lat', got {raw[:40]!r}") from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise WrongTypeError(f"{spec.name}: location out of range ({lon}, {lat})")
    return f"{format_double(lon)}{MULTI_SEPARATOR}{format_double(lat)}"
