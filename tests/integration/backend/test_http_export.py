"""GET /external/api/data/get against the real app: Blynk's link answer and error texts, the
zipped CSV it links to, aggregation, formats, the daily limit and expiry."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import zipfile
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from backend.transfer.schemas import DeviceOut
from tests.support.stack import StackConfig

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
LINK = re.compile(r"^http://127\.0\.0\.1:\d+/device_data_(\d+)_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_[A-Za-z0-9]{16}\.zip$")


def blynk_error(message: str) -> dict[str, object]:
    return {"error": {"message": message}}


def hour0() -> int:
    """The start of the UTC hour two hours ago, in epoch ms (so buckets are predictable)."""
    return (int(time.time() * 1000) // HOUR_MS - 2) * HOUR_MS


def put(http: httpx.Client, token: str, pin: str, points: list[list[object]]) -> None:
    r = http.post("/external/api/batch/update", params={"token": token, "pin": pin},
                  headers={"Content-Type": "application/json"}, content=json.dumps(points))
    assert r.status_code == 200, r.text


def export(http: httpx.Client, token: str, **params: str) -> httpx.Response:
    return http.get("/external/api/data/get", params={"token": token, **params})


def download(http: httpx.Client, link: str) -> dict[str, list[list[str]]]:
    """The CSV members of the zip at ``link``, as rows."""
    r = http.get(link)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        return {name: list(csv.reader(io.TextIOWrapper(zf.open(name), encoding="utf-8"))) for name in zf.namelist()}


@pytest.fixture
def filled(http: httpx.Client, devices: list[DeviceOut]) -> tuple[DeviceOut, int]:
    """A device with three Temperature points in two hours and one Label point."""
    dev, h = devices[0], hour0()
    put(http, dev.token, "v0", [[h + MINUTE_MS, 20], [h + 2 * MINUTE_MS, 22.5], [h + HOUR_MS + 5 * MINUTE_MS, 30]])
    put(http, dev.token, "v2", [[h + 3 * MINUTE_MS, "door, open"]])
    return dev, h


def test_raw_export_of_one_pin_links_to_a_zipped_csv(http: httpx.Client, filled: tuple[DeviceOut, int]) -> None:
    dev, h = filled
    r = export(http, dev.token, period="DAY", pin="v0")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert list(r.json()) == ["link"]
    match = LINK.match(r.json()["link"])
    assert match and int(match[1]) == dev.id
    members = download(http, r.json()["link"])
    (name, rows), = members.items()
    assert name.endswith(".csv")
    assert rows == [["data_stream_name", "ts", "value"], ["Temperature", str(h + MINUTE_MS), "20.0"],
                    ["Temperature", str(h + 2 * MINUTE_MS), "22.5"],
                    ["Temperature", str(h + HOUR_MS + 5 * MINUTE_MS), "30.0"]]


def test_without_a_pin_every_datastream_is_exported(http: httpx.Client, filled: tuple[DeviceOut, int]) -> None:
    dev, h = filled
    (rows,) = download(http, export(http, dev.token).json()["link"]).values()  # period MONTH by default
    assert [row[0] for row in rows[1:]] == ["Temperature"] * 3 + ["Label"]
    assert rows[-1] == ["Label", str(h + 3 * MINUTE_MS), "door, open"]


def test_the_link_uses_the_requests_host_header(http: httpx.Client, filled: tuple[DeviceOut, int]) -> None:
    r = http.get("/external/api/data/get", params={"token": filled[0].token}, headers={"Host": "blynk.example:8443"})
    assert r.json()["link"].startswith("http://blynk.example:8443/device_data_")


@pytest.mark.parametrize(("params", "expected"), [
    ({"granularityType": "HOURLY", "sourceType": "MAX"}, [(0, "22.5"), (HOUR_MS, "30.0")]),
    ({"granularityType": "HOURLY"}, [(0, "21.25"), (HOUR_MS, "30.0")]),  # AVG by default
    ({"granularityType": "HOURLY", "sourceType": "COUNT"}, [(0, "2"), (HOUR_MS, "1")]),
    ({"granularityType": "HOURLY", "sourceType": "SUM"}, [(0, "42.5"), (HOUR_MS, "30.0")]),
    ({"granularityType": "MINUTE", "sourceType": "MIN"},
     [(MINUTE_MS, "20.0"), (2 * MINUTE_MS, "22.5"), (HOUR_MS + 5 * MINUTE_MS, "30.0")]),
])
def test_granularity_and_source_type_aggregate_in_buckets(http: httpx.Client, filled: tuple[DeviceOut, int],
                                                          params: dict[str, str], expected: list[tuple[int, str]]) -> None:
    dev, h = filled
    (rows,) = download(http, export(http, dev.token, pin="v0", period="DAY", **params).json()["link"]).values()
    assert rows[1:] == [["Temperature", str(h + offset), value] for offset, value in expected]


def test_daily_buckets_start_at_midnight_in_tz_name(http: httpx.Client, filled: tuple[DeviceOut, int]) -> None:
    dev, h = filled
    tz = ZoneInfo("Asia/Kolkata")  # UTC+05:30: a day bucket never starts on a UTC hour
    r = export(http, dev.token, pin="v0", period="WEEK", granularityType="DAILY", sourceType="COUNT",
               tzName="Asia/Kolkata", format="ISO_SIMPLE")
    (rows,) = download(http, r.json()["link"]).values()
    days = {datetime.fromtimestamp((h + o) / 1000, tz).strftime("%Y-%m-%d 00:00:00")
            for o in (MINUTE_MS, 2 * MINUTE_MS, HOUR_MS + 5 * MINUTE_MS)}
    assert [row[1] for row in rows[1:]] == sorted(days)
    assert sum(int(row[2]) for row in rows[1:]) == 3


@pytest.mark.parametrize(("fmt", "pattern"), [("ISO_SIMPLE", "%Y-%m-%d %H:%M:%S"), ("ISO_US", "%m/%d/%y %I:%M:%S %p")])
def test_time_formats_in_the_requested_zone(http: httpx.Client, filled: tuple[DeviceOut, int], fmt: str,
                                            pattern: str) -> None:
    dev, h = filled
    r = export(http, dev.token, pin="v0", period="DAY", format=fmt, tzName="America/New_York")
    (rows,) = download(http, r.json()["link"]).values()
    first = datetime.fromtimestamp((h + MINUTE_MS) / 1000, timezone.utc).astimezone(ZoneInfo("America/New_York"))
    assert rows[1][1] == first.strftime(pattern)


def test_send_events_adds_the_timeline(http: httpx.Client, stack: StackConfig, filled: tuple[DeviceOut, int]) -> None:
    dev, h = filled
    with psycopg.connect(stack.database_url) as conn:
        conn.execute("INSERT INTO device_event (device_id, ts, kind, code, type, description) "
                     "VALUES (%s, to_timestamp(%s / 1000.0), 'event', 'overheat', 'warning', 'too hot')",
                     (dev.id, h + 4 * MINUTE_MS))
    members = download(http, export(http, dev.token, pin="v0", period="DAY", sendEvents="true").json()["link"])
    header, *rows = members["events.csv"]
    assert header == ["ts", "kind", "code", "type", "description"]
    # the logged event, beside the 'online' entry the device's own HTTP import caused
    assert [row for row in rows if row[1] == "event"] == [
        [str(h + 4 * MINUTE_MS), "event", "overheat", "warning", "too hot"]]
    assert {row[1] for row in rows} <= {"event", "online", "offline"}


def test_an_empty_range_is_blynks_no_data(http: httpx.Client, devices: list[DeviceOut]) -> None:
    r = export(http, devices[0].token, pin="v0")
    assert (r.status_code, r.json()) == (500, blynk_error("No data"))


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"period": "YEAR"}, 500, "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.Period.YEAR"),
    ({"period": "day"}, 500, "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.Period.day"),
    ({"granularityType": "WEEKLY"}, 500,
     "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.GraphGranularityType.WEEKLY"),
    ({"sourceType": "MED"}, 500,
     "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.AggregationFunctionType.MED"),
    ({"format": "CSV"}, 500, "No enum constant cc.blynk.server.core.model.widgets.ui.reporting.Format.CSV"),
    ({"tzName": "Mars/Olympus"}, 400, "Request with incorrect parameters"),
    ({"pin": "x0"}, 400, "Wrong pin format."),
    ({"pin": "v77"}, 400, "No datastream setup for that pin."),
    ({"dataStreamId": "x"}, 400, "Wrong dataStreamId format."),
])
def test_bad_parameters_get_blynks_answers(http: httpx.Client, filled: tuple[DeviceOut, int],
                                           params: dict[str, str], status: int, message: str) -> None:
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


def test_an_expired_export_is_gone_row_and_file(http: httpx.Client, stack: StackConfig,
                                                filled: tuple[DeviceOut, int]) -> None:
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


@pytest.mark.parametrize("path", ["/device_data_1_2020-01-01T00-00-00.zip", "/secret.key", "/..%2Fsecret.key",
                                  "/device_data_1_2020-01-01T00-00-00.zip.part"])
def test_unknown_names_are_plain_404s(http: httpx.Client, path: str) -> None:
    assert http.get(path).status_code == 404
