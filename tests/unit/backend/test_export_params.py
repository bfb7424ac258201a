"""data/get parameters and CSV formatting (pure functions), and the zip writer."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backend.device_api.export import ZipCsv
from backend.device_api.export_params import (
    data_queries,
    format_ts,
    format_value,
    parse_params,
    rollup_table,
    whole_hours,
)
from backend.errors import BlynkApiError, BlynkServerError
from backend.settings import Settings
from backend.templates.values import DatastreamSpec, DatastreamType

DOUBLE = DatastreamSpec(0, "Temperature", DatastreamType.DOUBLE)
INTEGER = DatastreamSpec(1, "Power", DatastreamType.INTEGER)
LOCATION = DatastreamSpec(3, "Where", DatastreamType.LOCATION)
RAW_DOUBLE = DatastreamSpec(4, "Raw", DatastreamType.DOUBLE, save_raw=True)
START = datetime(2024, 3, 1, 10, 17, 42, tzinfo=UTC)
END = START + timedelta(days=30)


def test_defaults_are_blynks() -> None:
    p = parse_params([("token", "t")], [DOUBLE])
    assert (p.period, p.unit, p.source, p.tz.key, p.fmt, p.send_events) == (
        timedelta(days=30),
        None,
        "AVG",
        "UTC",
        "TS",
        False,
    )


def test_every_documented_constant_is_accepted() -> None:
    for period in ("HOUR", "DAY", "WEEK", "MONTH", "THREE_MONTHS"):
        for granularity, unit in (("RAW_DATA", None), ("MINUTE", "minute"), ("HOURLY", "hour"), ("DAILY", "day")):
            for source in ("AVG", "MIN", "MAX", "SUM", "COUNT"):
                for fmt in ("TS", "ISO_US", "ISO_SIMPLE"):
                    p = parse_params(
                        [
                            ("period", period),
                            ("granularityType", granularity),
                            ("sourceType", source),
                            ("format", fmt),
                            ("sendEvents", "TRUE"),
                        ],
                        [],
                    )
                    assert (p.unit, p.fmt, p.send_events) == (unit, fmt, True)


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("period", "YEAR", "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.Period.YEAR"),
        ("period", "", "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.Period."),
        (
            "sourceType",
            "avg",
            "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.AggregationFunctionType.avg",
        ),
    ],
)
def test_unknown_constants_are_javas_500_text(key: str, value: str, text: str) -> None:
    with pytest.raises(BlynkServerError) as info:
        parse_params([(key, value)], [])
    assert info.value.message == text


def test_an_unknown_zone_is_a_bad_parameter() -> None:
    with pytest.raises(BlynkApiError, match="Request with incorrect parameters"):
        parse_params([("tzName", "../../etc/passwd")], [])


def tables(
    granularity: str, specs: list[DatastreamSpec], tz: str = "UTC", source: str = "AVG"
) -> list[tuple[str, str, datetime]]:
    """(FROM table, the selected value, the range's first instant) of each datastream's query."""
    params = parse_params([("granularityType", granularity), ("sourceType", source), ("tzName", tz)], specs)
    out = []
    for sql, args in data_queries(params, 7, START, END):
        assert (args["device"], args["end"]) == (7, END)
        select, rest = sql.split(" FROM ", 1)
        table = rest.split()[0].split("(")[0]
        table = "history" if table == "history_points" else table  # raw points, unpacked or packed
        out.append((table, select.rsplit(", ", 2)[-2], args["start"]))  # the third column
    return out


def test_raw_data_is_raw_points_only_with_save_raw_and_minute_averages_otherwise() -> None:
    minute = START.replace(second=0)
    assert tables("RAW_DATA", [RAW_DOUBLE, DOUBLE, LOCATION]) == [
        ("history", "value", START),
        ("history_minute", "sum / count", minute),
        ("history_minute", "sum / count", minute),
    ]
    for source, value in (("MIN", "min"), ("MAX", "max"), ("SUM", "sum"), ("COUNT", "count")):
        assert tables("RAW_DATA", [DOUBLE], source=source)[0][1] == value


def test_granularities_read_the_rollups_of_every_datastream() -> None:
    minute, hour = START.replace(second=0), START.replace(minute=0, second=0)
    for spec in (RAW_DOUBLE, DOUBLE):
        assert tables("MINUTE", [spec]) == [("history_minute", "sum / count", minute)]
        assert tables("HOURLY", [spec]) == [("history_hour", "sum(sum) / sum(count)", hour)]
        assert tables("DAILY", [spec], "Europe/Kyiv", "COUNT") == [("history_hour", "sum(count)::bigint", hour)]
        assert tables("DAILY", [spec], "America/New_York", "MAX") == [("history_hour", "max(max)", hour)]


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns"])
def test_hours_and_days_of_a_half_hour_zone_are_made_of_minutes(zone: str) -> None:
    for granularity in ("HOURLY", "DAILY"):
        assert tables(granularity, [DOUBLE], zone, "MIN") == [("history_minute", "min(min)", START.replace(second=0))]


def test_an_offset_that_is_not_whole_hours_for_part_of_the_range_counts() -> None:
    lord_howe = ZoneInfo("Australia/Lord_Howe")  # +10:30, and +11:00 in (southern) summer
    summer = datetime(2024, 1, 10, tzinfo=UTC)
    assert whole_hours(lord_howe, summer, summer + timedelta(days=10))
    assert not whole_hours(lord_howe, summer, summer + timedelta(days=90))  # reaches +10:30 in April
    assert rollup_table("day", lord_howe, summer, summer + timedelta(days=90)) == "history_minute"
    assert rollup_table("day", ZoneInfo("Europe/Kyiv"), summer, summer + timedelta(days=90)) == "history_hour"
    assert rollup_table("minute", ZoneInfo("UTC"), summer, summer + timedelta(days=1)) == "history_minute"


def test_time_formats_match_blynks_examples() -> None:
    ts = datetime(2019, 4, 10, 11, 45, 41, 250000, tzinfo=UTC)
    utc = ZoneInfo("UTC")
    assert format_ts(ts, "TS", utc) == "1554896741250"
    assert format_ts(ts, "ISO_US", utc) == "04/10/19 11:45:41 AM"
    assert format_ts(ts + timedelta(hours=12), "ISO_US", utc) == "04/10/19 11:45:41 PM"
    assert format_ts(ts - timedelta(hours=11), "ISO_US", utc) == "04/10/19 12:45:41 AM"
    assert format_ts(ts, "ISO_SIMPLE", ZoneInfo("Europe/Kyiv")) == "2019-04-10 14:45:41"


def test_values_are_written_as_devices_would_read_them() -> None:
    assert format_value(DOUBLE, 21.0, None) == "21.0"
    assert format_value(DOUBLE, 21.25, None) == "21.25"
    assert format_value(INTEGER, 1.0, None) == "1"
    assert format_value(INTEGER, 0.5, None) == "0.5"  # an average of an integer stream
    assert format_value(DOUBLE, 7, None) == "7"  # COUNT
    assert format_value(LOCATION, None, "24.1\x1f56.9") == "24.1,56.9"


def test_zip_csv_writes_members_chunk_by_chunk(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    writer = ZipCsv(path)
    writer.begin("data.csv", ["a", "b"])
    for chunk in range(50):
        writer.write([(chunk, i) for i in range(1000)], lambda row: [str(row[0]), f"v{row[1]}"])
    writer.begin("events.csv", ["ts"])
    writer.close()
    with zipfile.ZipFile(path) as zf:
        rows = list(csv.reader(io.TextIOWrapper(zf.open("data.csv"), encoding="utf-8")))
        assert zf.read("events.csv") == b"ts\r\n"
    assert len(rows) == 50_001 and rows[1] == ["0", "v0"] and rows[-1] == ["49", "v999"]


def test_limits_are_settings() -> None:
    s = Settings.from_env(
        {
            "OPENBLYNK_EXPORT_TTL_HOURS": "0.5",
            "OPENBLYNK_EXPORT_DAILY_LIMIT": "3",
            "OPENBLYNK_IMPORT_DAILY_POINTS": "50",
            "OPENBLYNK_UPLOAD_MAX_BYTES": "1024",
            "OPENBLYNK_UPLOAD_DAILY_LIMIT": "5",
            "OPENBLYNK_UPLOAD_FILES_PER_DEVICE": "2",
        },
        dotenv=Path("/nonexistent"),
    )
    assert (
        s.export_ttl_hours,
        s.export_daily_limit,
        s.import_daily_points,
        s.upload_max_bytes,
        s.upload_daily_limit,
        s.upload_files_per_device,
    ) == (0.5, 3, 50, 1024, 5, 2)
    d = Settings()
    assert (
        d.export_ttl_hours,
        d.export_daily_limit,
        d.import_daily_points,
        d.upload_max_bytes,
        d.upload_daily_limit,
        d.upload_files_per_device,
    ) == (24.0, 10, 10_000, 5 * 1024 * 1024, 100, 10)
