"""The parameters of ``data/get``, the queries that answer them and the formatting of its CSV
rows (pure: no I/O).

Where the rows come from follows Blynk's "Save Raw Data" (``save_raw``) of each datastream:

* ``RAW_DATA`` of a datastream with ``save_raw``: its raw points (numbers and texts).
* ``RAW_DATA`` of a datastream without it: its per-minute rollup, one point a minute, since that
  *is* its raw data on Blynk ("otherwise 1 point/min averaged"). ``sourceType`` picks the
  rollup column (``AVG`` = sum / count). Strings and locations have none: they are not kept.
* ``MINUTE``, ``HOURLY`` and ``DAILY`` of every datastream: the rollups, never raw rows (a month
  of hourly buckets is 720 rows to read, not millions); see :func:`rollup_table`.

Unknown constants answer as Blynk's Java server does: HTTP 500 ``No enum constant
<class>.<value>``. The class of ``period`` is Blynk's documented one; those of the other
parameters are the ones of Blynk's open-source server (an inference: blynk.cloud may differ).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backend import errors as e
from backend.device_api.common import Query, first
from backend.errors import BlynkApiError, BlynkServerError
from backend.history.rollup import LEVELS, bucket_of
from backend.templates.values import MULTI_SEPARATOR, DatastreamSpec, DatastreamType, format_double, wire_text

PERIODS = {
    "HOUR": timedelta(hours=1),
    "DAY": timedelta(days=1),
    "WEEK": timedelta(days=7),
    "MONTH": timedelta(days=30),
    "THREE_MONTHS": timedelta(days=90),
}
GRANULARITIES: dict[str, str | None] = {"RAW_DATA": None, "MINUTE": "minute", "HOURLY": "hour", "DAILY": "day"}
BUCKET_VALUES = {"AVG": "sum / count", "MIN": "min", "MAX": "max", "SUM": "sum", "COUNT": "count"}
"""``sourceType`` as the value of one rollup row."""
GROUP_VALUES = {
    "AVG": "sum(sum) / sum(count)",
    "MIN": "min(min)",
    "MAX": "max(max)",
    "SUM": "sum(sum)",
    "COUNT": "sum(count)::bigint",
}
"""``sourceType`` as the value of a group of rollup rows."""
FORMATS = ("TS", "ISO_US", "ISO_SIMPLE")
DATA_HEADER = ("data_stream_name", "ts", "value")
EVENT_HEADER = ("ts", "kind", "code", "type", "description")

_JAVA = "cc.blynk.server.core.model.widgets."
_ENUM_CLASSES = {
    "period": _JAVA + "outputs.graph.Period",
    "granularityType": _JAVA + "outputs.graph.GraphGranularityType",
    "sourceType": _JAVA + "outputs.graph.AggregationFunctionType",
    "format": _JAVA + "ui.reporting.Format",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)

_RAW_SQL = """
SELECT %(pin)s::int2, ts, value, text_value FROM history_points(%(device)s, %(pin)s, %(start)s, %(end)s)
ORDER BY ts
"""
_BUCKET_SQL = """
SELECT pin, bucket, {value}, NULL FROM {table}
WHERE device_id = %(device)s AND pin = %(pin)s AND bucket >= %(start)s AND bucket < %(end)s ORDER BY bucket
"""
_GROUP_SQL = """
SELECT pin, date_trunc(%(unit)s, bucket, %(tz)s) AS b, {value}, NULL FROM {table}
WHERE device_id = %(device)s AND pin = %(pin)s AND bucket >= %(start)s AND bucket < %(end)s
GROUP BY pin, b ORDER BY b
"""


@dataclass(frozen=True)
class ExportParams:
    """What one export contains and how its rows look."""

    specs: list[DatastreamSpec]
    period: timedelta
    unit: str | None  # date_trunc unit of the buckets; None = raw data
    source: str  # sourceType: AVG, MIN, MAX, SUM or COUNT
    tz: ZoneInfo
    fmt: str
    send_events: bool


def parse_params(query: Query, specs: list[DatastreamSpec]) -> ExportParams:
    """Read ``period``, ``granularityType``, ``sourceType``, ``tzName``, ``format``, ``sendEvents``."""
    period = _enum(query, "period", PERIODS, "MONTH")
    unit = _enum(query, "granularityType", GRANULARITIES, "RAW_DATA")
    source = _enum(query, "sourceType", {name: name for name in BUCKET_VALUES}, "AVG")
    fmt = _enum(query, "format", {f: f for f in FORMATS}, "TS")
    tz_name = first(query, "tzName") or "UTC"
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BlynkApiError(e.BAD_PARAMS) from None
    send_events = (first(query, "sendEvents") or "").lower() == "true"  # Java's Boolean.parseBoolean
    return ExportParams(specs, period, unit, source, tz, fmt, send_events)


def _enum(query: Query, key: str, choices: dict[str, Any], default: str) -> Any:
    value = first(query, key)
    value = default if value is None else value
    if value not in choices:
        raise BlynkServerError(f"No enum constant {_ENUM_CLASSES[key]}.{value}")
    return choices[value]


DataQuery = tuple[str, dict[str, Any]]
"""SQL and its arguments."""


def data_queries(params: ExportParams, device_id: int, start: datetime, end: datetime) -> list[DataQuery]:
    """One query per datastream, in the order of ``params.specs``; each gives ``(pin, ts, number,
    text)`` rows in time order."""
    table = rollup_table(params.unit, params.tz, start, end)
    return [_data_query(spec, params, table, device_id, start, end) for spec in params.specs]


def _data_query(
    spec: DatastreamSpec, params: ExportParams, table: str, device_id: int, start: datetime, end: datetime
) -> DataQuery:
    args: dict[str, Any] = {
        "device": device_id,
        "pin": spec.pin,
        "start": start,
        "end": end,
        "unit": params.unit,
        "tz": params.tz.key,
    }
    if params.unit is None and spec.save_raw:
        return _RAW_SQL, args
    args["start"] = bucket_of(start, LEVELS[table])  # the bucket holding the range's start is in
    if params.unit in (None, "minute"):
        return _BUCKET_SQL.format(table=table, value=BUCKET_VALUES[params.source]), args
    return _GROUP_SQL.format(table=table, value=GROUP_VALUES[params.source]), args


def rollup_table(unit: str | None, tz: ZoneInfo, start: datetime, end: datetime) -> str:
    """The rollup that buckets of ``unit`` are made of (None: the raw data of a datastream
    without ``save_raw``).

    Minutes and raw data come from the per-minute rollup. Hours and days come from the
    per-hour one, whose hours are aligned to UTC; that is exact only while ``tz`` is a whole
    number of hours from UTC. In a zone with a :30 or :45 offset (Asia/Kolkata +5:30,
    Asia/Kathmandu +5:45, America/St_Johns -3:30, Australia/Lord_Howe +10:30 in winter) a local
    hour or day starts in the middle of a UTC hour, so there they are made of minutes: exact
    edges, for 60 times the rows read.
    """
    if unit in (None, "minute") or not whole_hours(tz, start, end):
        return "history_minute"
    return "history_hour"


def whole_hours(tz: ZoneInfo, start: datetime, end: datetime) -> bool:
    """Whether ``tz`` is a whole number of hours from UTC throughout [start, end] (checked hour
    by hour, so any offset that lasts an hour is seen; at most 2,160 checks for 90 days)."""
    at = start
    while at < end:
        if _offset(tz, at) % _HOUR:
            return False
        at += _HOUR
    return not _offset(tz, end) % _HOUR


def _offset(tz: ZoneInfo, at: datetime) -> timedelta:
    return at.astimezone(tz).utcoffset() or timedelta(0)


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
