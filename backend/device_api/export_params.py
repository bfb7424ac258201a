"""The parameters of ``data/get`` and the formatting of its CSV rows (pure: no I/O).

Unknown constants answer as Blynk's Java server does: HTTP 500 ``No enum constant
<class>.<value>``. The class of ``period`` is Blynk's documented one; those of the other
parameters are the ones of Blynk's open-source server (an inference: blynk.cloud may differ).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backend import errors as e
from backend.device_api.common import Query, first
from backend.errors import BlynkApiError, BlynkServerError
from backend.templates.values import DatastreamSpec, DatastreamType, format_double, wire_text, MULTI_SEPARATOR

PERIODS = {"HOUR": timedelta(hours=1), "DAY": timedelta(days=1), "WEEK": timedelta(days=7),
           "MONTH": timedelta(days=30), "THREE_MONTHS": timedelta(days=90)}
GRANULARITIES: dict[str, str | None] = {"RAW_DATA": None, "MINUTE": "minute", "HOURLY": "hour", "DAILY": "day"}
AGGREGATES = {"AVG": "avg(value)", "MIN": "min(value)", "MAX": "max(value)", "SUM": "sum(value)",
              "COUNT": "count(*)"}
FORMATS = ("TS", "ISO_US", "ISO_SIMPLE")
DATA_HEADER = ("data_stream_name", "ts", "value")
EVENT_HEADER = ("ts", "kind", "code", "type", "description")

_JAVA = "cc.blynk.server.core.model.widgets."
_ENUM_CLASSES = {"period": _JAVA + "outputs.graph.Period",
                 "granularityType": _JAVA + "outputs.graph.GraphGranularityType",
                 "sourceType": _JAVA + "outputs.graph.AggregationFunctionType",
                 "format": _JAVA + "ui.reporting.Format"}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class ExportParams:
    """What one export contains and how its rows look."""

    specs: list[DatastreamSpec]
    period: timedelta
    unit: str | None  # date_trunc unit of the buckets; None = raw points
    aggregate: str  # SQL aggregate of a bucket
    tz: ZoneInfo
    fmt: str
    send_events: bool


def parse_params(query: Query, specs: list[DatastreamSpec]) -> ExportParams:
    """Read ``period``, ``granularityType``, ``sourceType``, ``tzName``, ``format``, ``sendEvents``."""
    period = _enum(query, "period", PERIODS, "MONTH")
    unit = _enum(query, "granularityType", GRANULARITIES, "RAW_DATA")
    aggregate = _enum(query, "sourceType", AGGREGATES, "AVG")
    fmt = _enum(query, "format", {f: f for f in FORMATS}, "TS")
    tz_name = first(query, "tzName") or "UTC"
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BlynkApiError(e.BAD_PARAMS) from None
    send_events = (first(query, "sendEvents") or "").lower() == "true"  # Java's Boolean.parseBoolean
    return ExportParams(specs, period, unit, aggregate, tz, fmt, send_events)


def _enum(query: Query, key: str, choices: dict[str, Any], default: str) -> Any:
    value = first(query, key)
    value = default if value is None else value
    if value not in choices:
        raise BlynkServerError(f"No enum constant {_ENUM_CLASSES[key]}.{value}")
    return choices[value]


def format_ts(ts: datetime, fmt: str, tz: ZoneInfo) -> str:
    """A timestamp as ``TS`` (epoch ms), ``ISO_SIMPLE`` (``2018-06-07 22:01:20``) or
    ``ISO_US`` (``04/10/19 11:45:41 AM``), the last two in ``tz``."""
    if fmt == "TS":
        return str((ts - _EPOCH) // timedelta(milliseconds=1))
    local = ts.astimezone(tz)
    if fmt == "ISO_SIMPLE":
        return f"{local:%Y-%m-%d %H:%M:%S}"
    hour12 = local.hour % 12 or 12
    return f"{local:%m/%d/%y} {hour12:02d}:{local:%M:%S} {'AM' if local.hour < 12 else 'PM'}"


def format_value(spec: DatastreamSpec, number: float | int | None, text: str | None) -> str:
    """A stored value for the CSV: integers without ``.0``, locations as ``lon,lat``."""
    if number is None:
        return wire_text(text or "").replace(MULTI_SEPARATOR, ",")
    if isinstance(number, int):
        return str(number)
    if number.is_integer() and spec.type in (DatastreamType.INTEGER, DatastreamType.ENUM):
        return str(int(number))
    return format_double(number)


def data_formatter(params: ExportParams) -> Callable[[Sequence[Any]], list[str]]:
    """Turns a ``(pin, ts, number, text)`` row into a CSV row."""
    by_pin = {s.pin: s for s in params.specs}

    def fmt(row: Sequence[Any]) -> list[str]:
        spec = by_pin[row[0]]
        return [spec.name, format_ts(row[1], params.fmt, params.tz), format_value(spec, row[2], row[3])]
    return fmt


def event_formatter(params: ExportParams) -> Callable[[Sequence[Any]], list[str]]:
    """Turns a ``(ts, kind, code, type, description)`` row into a CSV row."""
    def fmt(row: Sequence[Any]) -> list[str]:
        return [format_ts(row[0], params.fmt, params.tz), *("" if v is None else str(v) for v in row[1:])]
    return fmt
