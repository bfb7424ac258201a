"""GET /external/api/data/get against the real app: Blynk's link answer and error texts, the
zipped CSV it links to, aggregation, formats, the daily limit and expiry.

``filled`` is a device whose datastreams keep raw data (``save_raw``); ``plain`` one whose do
not, so its "raw data" is one averaged point a minute, as on Blynk. MINUTE, HOURLY and DAILY
come from the rollups for both."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import zipfile
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from backend.transfer.schemas import DeviceOut
from tests.support.blynk import blynk_error
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
LINK = re.compile(r"^http://127\.0\.0\.1:\d+/device_data_(\d+)_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_[A-Za-z0-9]{16}\.zip$")


def hour0() -> int:
    """The start of the UTC hour two hours ago, in epoch ms (so buckets are predictable)."""
    return (int(time.time() * 1000) // HOUR_MS - 2) * HOUR_MS


def put(http: httpx.Client, token: str, pin: str, points: list[list[object]]) -> None:
    r = http.post(
        "/external/api/batch/update",
        params={"token": token, "pin": pin},
        headers={"Content-Type": "application/json"},
        content=json.dumps(points),
    )
    assert r.status_code == 200, r.text


def export(http: httpx.Client, token: str, **params: str) -> httpx.Response:
    return http.get("/external/api/data/get", params={"token": token, **params})


def download(http: httpx.Client, link: str) -> dict[str, list[list[str]]]:
    """The CSV members of the zip at ``link``, as rows."""
    r = http.get(link)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        return {name: list(csv.reader(io.TextIOWrapper(zf.open(name), encoding="utf-8"))) for name in zf.namelist()}


def fill(http: httpx.Client, dev: DeviceOut) -> tuple[DeviceOut, int]:
    """Three Temperature points in two hours and one Label point."""
    h = hour0()
    put(http, dev.token, "v0", [[h + MINUTE_MS, 20], [h + 2 * MINUTE_MS, 22.5], [h + HOUR_MS + 5 * MINUTE_MS, 30]])
    put(http, dev.token, "v2", [[h + 3 * MINUTE_MS, "door, open"]])
    return dev, h


def new_device(stack: StackConfig, save_raw: bool) -> DeviceOut:
    return provision(stack.database_url, thermostat_doc(save_raw=save_raw)).devices[0]


@pytest.fixture
def devices(stack: StackConfig) -> list[DeviceOut]:
    """Two devices whose datastreams keep raw data."""
    return provision(stack.database_url, thermostat_doc(devices=2, save_raw=True)).devices


@pytest.fixture
def filled(http: httpx.Client, devices: list[DeviceOut]) -> tuple[DeviceOut, int]:
    """A device keeping raw data, with three Temperature points in two hours and one Label point."""
    return fill(http, devices[0])


@pytest.fixture
def plain(http: httpx.Client, stack: StackConfig) -> tuple[DeviceOut, int]:
    """The same points sent to a device whose datastreams do not keep raw data."""
    return fill(http, new_device(stack, save_raw=False))


def data_rows(http: httpx.Client, token: str, **params: str) -> list[list[str]]:
    """The data rows (no header) of an export."""
    r = export(http, token, **params)
    assert r.status_code == 200, r.text
    (rows,) = download(http, r.json()["link"]).values()
    return rows[1:]


def test_raw_export_of_one_pin_links_to_a_zipped_csv(http: httpx.Client, filled: tuple[DeviceOut, int]) -> None:
    dev, h = filled
    r = export(http, dev.token, period="DAY", pin="v0")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert list(r.json()) == ["link"]
    match = LINK.match(r.json()["link"])
    assert match and int(match[1]) == dev.id
    members = download(http, r.json()["link"])
    ((name, rows),) = members.items()
    assert name.endswith(".csv")
    assert rows == [
        ["data_stream_name", "ts", "value"],
        ["Temperature", str(h + MINUTE_MS), "20.0"],
        ["Temperature", str(h + 2 * MINUTE_MS), "22.5"],
        ["Temperature", str(h + HOUR_MS + 5 * MINUTE_MS), "30.0"],
    ]


def test_without_a_pin_every_datastream_is_exported(http: httpx.Client, filled: tuple[DeviceOut, int]) -> None:
    dev, h = filled
    (rows,) = download(http, export(http, dev.token).json()["link"]).values()  # period MONTH by default
    assert [row[0] for row in rows[1:]] == ["Temperature"] * 3 + ["Label"]
    assert rows[-1] == ["Label", str(h + 3 * MINUTE_MS), "door, open"]


def test_the_link_uses_the_requests_host_header(http: httpx.Client, filled: tuple[DeviceOut, int]) -> None:
    r = http.get("/external/api/data/get", params={"token": filled[0].token}, headers={"Host": "blynk.example:8443"})
    assert r.json()["link"].startswith("http://blynk.example:8443/device_data_")


GRANULARITY_CASES = [
    ({"granularityType": "HOURLY", "sourceType": "MAX"}, [(0, "22.5"), (HOUR_MS, "30.0")]),
    ({"granularityType": "HOURLY"}, [(0, "21.25"), (HOUR_MS, "30.0")]),  # AVG by default
    ({"granularityType": "HOURLY", "sourceType": "COUNT"}, [(0, "2"), (HOUR_MS, "1")]),
    ({"granularityType": "HOURLY", "sourceType": "SUM"}, [(0, "42.5"), (HOUR_MS, "30.0")]),
    (
        {"granularityType": "MINUTE", "sourceType": "MIN"},
        [(MINUTE_MS, "20.0"), (2 * MINUTE_MS, "22.5"), (HOUR_MS + 5 * MINUTE_MS, "30.0")],
    ),
    (
        {"granularityType": "MINUTE", "sourceType": "COUNT"},
        [(MINUTE_MS, "1"), (2 * MINUTE_MS, "1"), (HOUR_MS + 5 * MINUTE_MS, "1")],
    ),
    ({"granularityType": "DAILY", "sourceType": "SUM"}, None),  # one or two UTC days: checked by total
]


@pytest.mark.parametrize("save_raw", [True, False], ids=["save_raw", "rollups_only"])
@pytest.mark.parametrize(("params", "expected"), GRANULARITY_CASES)
def test_granularity_and_source_type_aggregate_in_buckets(
    http: httpx.Client,
    stack: StackConfig,
    save_raw: bool,
    params: dict[str, str],
    expected: list[tuple[int, str]] | None,
) -> None:
    dev, h = fill(http, new_device(stack, save_raw))
    rows = data_rows(http, dev.token, pin="v0", period="DAY", **params)
    if expected is None:
        assert sum(float(row[2]) for row in rows) == 72.5 and all(int(row[1]) % (24 * HOUR_MS) == 0 for row in rows)
    else:
        assert rows == [["Temperature", str(h + offset), value] for offset, value in expected]


@pytest.mark.parametrize("granularity", ["MINUTE", "HOURLY", "DAILY"])
def test_every_granularity_reads_the_rollups(
    http: httpx.Client, stack: StackConfig, filled: tuple[DeviceOut, int], granularity: str
) -> None:
    dev, _ = filled
    before = data_rows(http, dev.token, pin="v0", period="DAY", granularityType=granularity, sourceType="COUNT")
    with psycopg.connect(stack.database_url) as conn:  # the raw points go; the rollups stay
        conn.execute("DELETE FROM history WHERE device_id = %s", (dev.id,))
    after = data_rows(http, dev.token, pin="v0", period="DAY", granularityType=granularity, sourceType="COUNT")
    assert after == before and sum(int(row[2]) for row in after) == 3
    r = export(http, dev.token, pin="v0", period="DAY")  # RAW_DATA of a save_raw datastream: the raw points
    assert (r.status_code, r.json()) == (500, blynk_error("No data"))


def test_raw_data_without_save_raw_is_one_averaged_point_a_minute(http: httpx.Client, stack: StackConfig) -> None:
    dev, h = fill(http, new_device(stack, save_raw=False))
    put(http, dev.token, "v0", [[h + MINUTE_MS + 30_000, 23], [h + MINUTE_MS + 59_999, 26]])  # same minute as 20
    assert data_rows(http, dev.token, pin="v0", period="DAY") == [
        ["Temperature", str(h + MINUTE_MS), "23.0"],
        ["Temperature", str(h + 2 * MINUTE_MS), "22.5"],
        ["Temperature", str(h + HOUR_MS + 5 * MINUTE_MS), "30.0"],
    ]
    for source, first in (("MIN", "20.0"), ("MAX", "26.0"), ("SUM", "69.0"), ("COUNT", "3")):
        rows = data_rows(http, dev.token, pin="v0", period="DAY", sourceType=source)
        assert rows[0] == ["Temperature", str(h + MINUTE_MS), first] and len(rows) == 3
    with psycopg.connect(stack.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM history WHERE device_id = %s", (dev.id,)).fetchone() == (0,)


def test_without_save_raw_strings_are_not_exported(http: httpx.Client, plain: tuple[DeviceOut, int]) -> None:
    dev, h = plain
    assert [row[0] for row in data_rows(http, dev.token)] == ["Temperature"] * 3  # no Label
    r = export(http, dev.token, pin="v2")
    assert (r.status_code, r.json()) == (500, blynk_error("No data"))


@pytest.mark.parametrize("save_raw", [True, False], ids=["save_raw", "rollups_only"])
@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Asia/Kathmandu", "America/New_York", "UTC"])
@pytest.mark.parametrize("granularity", ["HOURLY", "DAILY"])
def test_hours_and_days_start_on_the_hour_and_at_midnight_in_tz_name(
    http: httpx.Client, stack: StackConfig, save_raw: bool, zone: str, granularity: str
) -> None:
    """Points 10 minutes either side of a local midnight, which in India (+5:30) and Nepal
    (+5:45) falls inside a UTC hour: each side lands in its own local hour and day."""
    tz = ZoneInfo(zone)
    day = (datetime.now(tz) - timedelta(days=2)).date()
    midnight = datetime.combine(day, clock(0), tz).astimezone(UTC)
    dev = new_device(stack, save_raw)
    put(http, dev.token, "v0", [[int((midnight + timedelta(minutes=m)).timestamp() * 1000), 1] for m in (-10, 10, 20)])
    rows = data_rows(
        http,
        dev.token,
        pin="v0",
        period="WEEK",
        granularityType=granularity,
        sourceType="COUNT",
        tzName=zone,
        format="ISO_SIMPLE",
    )
    before = f"{day - timedelta(days=1)} {'23' if granularity == 'HOURLY' else '00'}:00:00"
    assert rows == [["Temperature", before, "1"], ["Temperature", f"{day} 00:00:00", "2"]]


@pytest.mark.parametrize(("fmt", "pattern"), [("ISO_SIMPLE", "%Y-%m-%d %H:%M:%S"), ("ISO_US", "%m/%d/%y %I:%M:%S %p")])
def test_time_formats_in_the_requested_zone(
    http: httpx.Client, filled: tuple[DeviceOut, int], fmt: str, pattern: str
) -> None:
    dev, h = filled
    r = export(http, dev.token, pin="v0", period="DAY", format=fmt, tzName="America/New_York")
    (rows,) = download(http, r.json()["link"]).values()
    first = datetime.fromtimestamp((h + MINUTE_MS) / 1000, UTC).astimezone(ZoneInfo("America/New_York"))
    assert rows[1][1] == first.strftime(pattern)


def test_send_events_adds_the_timeline(http: httpx.Client, stack: StackConfig, filled: tuple[DeviceOut, int]) -> None:
    dev, h = filled
    with psycopg.connect(stack.database_url) as conn:
        conn.execute(
            "INSERT INTO device_event (device_id, ts, kind, code, type, description) "
            "VALUES (%s, to_timestamp(%s / 1000.0), 'event', 'overheat', 'warning', 'too hot')",
            (dev.id, h + 4 * MINUTE_MS),
        )
    members = download(http, export(http, dev.token, pin="v0", period="DAY", sendEvents="true").json()["link"])
    header, *rows = members["events.csv"]
    assert header == ["ts", "kind", "code", "type", "description"]
    # the logged event, beside the 'online' entry the device's own HTTP import caused
    assert [row for row in rows if row[1] == "event"] == [
        [str(h + 4 * MINUTE_MS), "event", "overheat", "warning", "too hot"]
    ]
    assert {row[1] for row in rows} <= {"event", "online", "offline"}


def test_an_empty_range_is_blynks_no_data(http: httpx.Client, devices: list[DeviceOut]) -> None:
    r = export(http, devices[0].token, pin="v0")
    assert (r.status_code, r.json()) == (500, blynk_error("No data"))


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"period": "YEAR"}, 500, "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.Period.YEAR"),
        ({"period": "day"}, 500, "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.Period.day"),
        (
            {"granularityType": "WEEKLY"},
            500,
            "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.GraphGranularityType.WEEKLY",
        ),
        (
            {"sourceType": "MED"},
            500,
            "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.AggregationFunctionType.MED",
        ),
        ({"format": "CSV"}, 500, "No enum constant cc.blynk.server.core.model.widgets.ui.reporting.Format.CSV"),
        ({"tzName": "Mars/Olympus"}, 400, "Request with incorrect parameters"),
        ({"pin": "x0"}, 400, "Wrong pin format."),
        ({"pin": "v77"}, 400, "No datastream setup for that pin."),
        ({"dataStreamId": "x"}, 400, "Wrong dataStreamId format."),
    ],
)
def test_bad_parameters_get_blynks_answers(
    http: httpx.Client, filled: tuple[DeviceOut, int], params: dict[str, str], status: int, message: str
) -> None:
    r = export(http, filled[0].token, **params)
    assert (r.status_code, r.json()) == (status, blynk_error(message))


def test_token_errors(http: httpx.Client) -> None:
    assert http.get("/external/api/data/get").json() == blynk_error("No token provided.")
    r = http.get("/external/api/data/get", params={"token": "y" * 32})
    assert (r.status_code, r.json()) == (400, blynk_error("Invalid token."))


def test_ten_exports_a_day_then_403(http: httpx.Client, filled: tuple[DeviceOut, int]) -> None:
    dev, _ = filled
    assert export(http, dev.token, pin="v9").status_code == 400  # refused requests do not count,
    assert export(http, dev.token, pin="v1").status_code == 500  # nor do empty ones ("No data")
    links = [export(http, dev.token, pin="v0", period="DAY").json()["link"] for _ in range(10)]
    assert len(set(links)) == 10  # several in one second get distinct names
    r = export(http, dev.token, pin="v0", period="DAY")
    assert (r.status_code, r.json()) == (403, blynk_error("Data export limit has been reached."))
    assert all(http.get(link).status_code == 200 for link in links)


def test_an_expired_export_is_gone_row_and_file(
    http: httpx.Client, stack: StackConfig, filled: tuple[DeviceOut, int]
) -> None:
    link = export(http, filled[0].token, pin="v0", period="DAY").json()["link"]
    name = link.rsplit("/", 1)[1]
    path = stack.data_dir / "exports" / name
    assert path.is_file() and http.get(link).status_code == 200
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("UPDATE device_file SET created_at = now() - interval '25 hours' WHERE stored_name = %s", (name,))
    assert http.get(link).status_code == 404
    assert not path.exists()
    with psycopg.connect(stack.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM device_file WHERE stored_name = %s", (name,)).fetchone() == (0,)


@pytest.mark.parametrize(
    "path",
    [
        "/device_data_1_2020-01-01T00-00-00.zip",
        "/secret.key",
        "/..%2Fsecret.key",
        "/device_data_1_2020-01-01T00-00-00.zip.part",
    ],
)
def test_unknown_names_are_plain_404s(http: httpx.Client, path: str) -> None:
    assert http.get(path).status_code == 404
