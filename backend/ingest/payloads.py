"""Parsing of the JSON uplinks ``batch_ds`` and ``ds/<name>/timestamped_batch`` (pure).

JSON values are type-checked against the datastream as Blynk documents (reference §1.4):
a string only for String datastreams, a number for Integer/Double/Enum, ``true``/``false``
for Integer/Enum (as 1/0), ``[lon, lat]`` for Location. A value that passes becomes the text
form :func:`backend.templates.values.parse_value` checks and clamps, so every path stores
values the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.errors import ValidationError
from backend.templates.values import MULTI_SEPARATOR, DatastreamSpec, DatastreamType, WrongTypeError

_NUMERIC = (DatastreamType.INTEGER, DatastreamType.DOUBLE, DatastreamType.ENUM)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else "object"


def json_value_text(spec: DatastreamSpec, value: Any) -> str:
    """The text form of a JSON value for ``spec``; raises WrongTypeError if the types differ."""
    kind = _kind(value)
    if spec.type is DatastreamType.STRING and kind == "string":
        return str(value)
    if spec.type in _NUMERIC and kind == "number":
        if isinstance(value, float) and not math.isfinite(value):
            raise WrongTypeError(f"{spec.name} expects a finite number")
        return repr(value)
    if spec.type in (DatastreamType.INTEGER, DatastreamType.ENUM) and kind == "boolean":
        return "1" if value else "0"
    if (
        spec.type is DatastreamType.LOCATION
        and kind == "array"
        and len(value) == 2
        and all(_kind(v) == "number" for v in value)
    ):
        return f"{value[0]!r}{MULTI_SEPARATOR}{value[1]!r}"
    expected = {
        DatastreamType.STRING: "a string",
        DatastreamType.LOCATION: "[lon, lat]",
        DatastreamType.INTEGER: "a number or true/false",
        DatastreamType.ENUM: "a number or true/false",
        DatastreamType.DOUBLE: "a number",
    }[spec.type]
    raise WrongTypeError(f"{spec.name} ({spec.type.value}) expects {expected}, got a JSON {kind}")


@dataclass
class BatchEntries:
    """The entries of a ``batch_ds`` payload: good ones as (spec, text), bad ones as messages."""

    good: list[tuple[DatastreamSpec, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_batch_ds(payload: bytes, by_name: dict[str, DatastreamSpec]) -> BatchEntries:
    """Split a ``batch_ds`` object into checked entries and per-entry errors.

    Raises ValidationError if the payload is not a JSON object at all.
    """
    document = _load_json(payload)
    if not isinstance(document, dict):
        raise ValidationError(f"expected a JSON object by datastream name, got a JSON {_kind(document)}")
    out = BatchEntries()
    for name, value in document.items():
        spec = by_name.get(name)
        if spec is None:
            out.errors.append(f"no datastream named {name[:64]!r}")
            continue
        try:
            out.good.append((spec, json_value_text(spec, value)))
        except ValidationError as exc:
            out.errors.append(exc.message)
    return out


@dataclass
class TimestampedPoints:
    """A checked ``timestamped_batch``: points inside the window, and what was refused."""

    points: list[tuple[datetime, str]] = field(default_factory=list)
    out_of_window: int = 0
    bad: int = 0
    first_error: str = ""


def parse_timestamped(
    payload: bytes, spec: DatastreamSpec, now: datetime, max_age: timedelta = timedelta(days=30)
) -> TimestampedPoints:
    """Parse ``[[ts_ms, value], ...]``; points further than ``max_age`` from ``now`` are refused.

    Raises ValidationError if the payload is not a JSON array.
    """
    document = _load_json(payload)
    if not isinstance(document, list):
        raise ValidationError(f"expected a JSON array of [ts_ms, value] pairs, got a JSON {_kind(document)}")
    out = TimestampedPoints()
    for item in document:
        try:
            at, text = _point(spec, item)
        except ValidationError as exc:
            out.bad += 1
            out.first_error = out.first_error or exc.message
            continue
        if not in_window(at, now, max_age):
            out.out_of_window += 1
            continue
        out.points.append((at, text))
    return out


def in_window(at: datetime, now: datetime, max_age: timedelta) -> bool:
    """True when ``at`` is at most ``max_age`` before or after ``now``."""
    return now - max_age <= at <= now + max_age


def _point(spec: DatastreamSpec, item: Any) -> tuple[datetime, str]:
    if not isinstance(item, list) or len(item) != 2 or _kind(item[0]) != "number":
        raise ValidationError("each point must be [ts_ms, value]")
    ts = item[0]
    if not math.isfinite(ts) or not 0 <= ts < 1e14:
        raise ValidationError(f"timestamp {str(ts)[:20]} is not epoch milliseconds")
    return datetime.fromtimestamp(ts / 1000, tz=UTC), json_value_text(spec, item[1])


def _load_json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"not valid JSON ({str(exc)[:60]})") from None
