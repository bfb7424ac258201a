"""POST /external/api/batch/update (timestamped points) against the real app: Blynk's bodies,
status codes and texts; points land in history at their own timestamps, all or nothing.

Most tests look at raw rows, so their devices keep raw data (``save_raw``); the last ones show
what a datastream without it keeps: rollups only."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import psycopg
import pytest

from backend.transfer.schemas import DeviceOut
from tests.support.blynk import blynk_error
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

JSON = {"Content-Type": "application/json"}
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def now_ms() -> int:
    return int(time.time() * 1000)


def post(
    http: httpx.Client, token: str, points: Any, pin: str = "v0", headers: dict[str, str] | None = None, **params: str
) -> httpx.Response:
    query = {"token": token, "pin": pin, **params} if pin else {"token": token, **params}
    return http.post(
        "/external/api/batch/update",
        params=query,
        headers=JSON if headers is None else headers,
        content=points if isinstance(points, (bytes, str)) else json.dumps(points),
    )


@pytest.fixture
def devices(stack: StackConfig) -> list[DeviceOut]:
    """Two devices whose datastreams keep raw data (Blynk's "Save Raw Data")."""
    return provision(stack.database_url, thermostat_doc(devices=2, save_raw=True)).devices


@pytest.fixture
def plain(stack: StackConfig) -> DeviceOut:
    """A device whose datastreams do not keep raw data (the default)."""
    return provision(stack.database_url, thermostat_doc()).devices[0]


def rollups(stack: StackConfig, table: str, device_id: int, pin: int) -> list[tuple[int, float, float, float, int]]:
    """(bucket in epoch ms, min, max, sum, count) of one datastream's rollup ``table``."""
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            f"SELECT (extract(epoch FROM bucket) * 1000)::bigint, min, max, sum, count FROM {table} "
            "WHERE device_id = %s AND pin = %s ORDER BY bucket",
            (device_id, pin),
        ).fetchall()
    return [(int(r[0]), *r[1:]) for r in rows]


def history(stack: StackConfig, device_id: int, pin: int) -> list[tuple[int, float | None, str | None]]:
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT (extract(epoch FROM ts) * 1000)::bigint, value, text_value FROM history "
            "WHERE device_id = %s AND pin = %s ORDER BY ts",
            (device_id, pin),
        ).fetchall()
    return [(int(r[0]), r[1], r[2]) for r in rows]


def test_points_become_history_rows_and_the_newest_the_latest_value(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    dev, t = devices[0], now_ms()
    points = [[t - 2 * HOUR_MS, 20.5], [t - HOUR_MS, 21], [t - 25 * DAY_MS, 19.0]]
    r = post(http, dev.token, points)
    assert (r.status_code, r.text) == (200, "")
    assert history(stack, dev.id, 0) == [
        (t - 25 * DAY_MS, 19.0, None),
        (t - 2 * HOUR_MS, 20.5, None),
        (t - HOUR_MS, 21.0, None),
    ]
    assert [row[1:] for row in rollups(stack, "history_minute", dev.id, 0)] == [
        (19.0, 19.0, 19.0, 1),
        (20.5, 20.5, 20.5, 1),
        (21.0, 21.0, 21.0, 1),
    ]  # raw points are in the rollups too
    assert http.get(f"/external/api/get?token={dev.token}&v0").text == "21.0"


def test_an_older_point_never_replaces_a_newer_latest_value(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    dev = devices[0]
    assert http.get(f"/external/api/update?token={dev.token}&v0=30").status_code == 200
    assert post(http, dev.token, [[now_ms() - HOUR_MS, 10]]).status_code == 200
    assert http.get(f"/external/api/get?token={dev.token}&v0").text == "30.0"
    # the update's own row goes through the batching history writer
    wait_for(lambda: [row[1] for row in history(stack, dev.id, 0)] == [10.0, 30.0], message="both history rows")


@pytest.mark.parametrize(
    ("pin", "points", "stored"),
    [
        ("v1", [[0, True], [1, False], [2, 7]], [1.0, 0.0, 1.0]),  # booleans as 1/0; clamped to max 1
        ("v2", [[0, "Some value"], [1, "x,y"]], ["Some value", "x,y"]),
        ("v3", [[0, [32.12396, 49.109466]]], ["32.12396\x1f49.109466"]),
    ],
)
def test_each_datastream_type_takes_its_json_type(
    http: httpx.Client,
    stack: StackConfig,
    devices: list[DeviceOut],
    pin: str,
    points: list[list[Any]],
    stored: list[Any],
) -> None:
    dev, t = devices[0], now_ms() - HOUR_MS
    r = post(http, dev.token, [[t + dt, v] for dt, v in points], pin=pin)
    assert (r.status_code, r.text) == (200, "")
    assert [row[1] if row[1] is not None else row[2] for row in history(stack, dev.id, int(pin[1:]))] == stored


@pytest.mark.parametrize(
    ("pin", "value"), [("v0", "21.5"), ("v0", [1, 2]), ("v2", 5), ("v3", "1,2"), ("v3", [1]), ("v1", 1.5), ("v0", None)]
)
def test_a_value_of_the_wrong_json_type_is_refused_and_nothing_is_stored(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut], pin: str, value: Any
) -> None:
    dev, t = devices[0], now_ms()
    r = post(http, dev.token, [[t - 2000, 1 if pin != "v2" else "ok"], [t - 1000, value]], pin=pin)
    assert (r.status_code, r.json()) == (400, blynk_error("Value doesn't match the Datastream data type."))
    assert history(stack, dev.id, int(pin[1:])) == []


@pytest.mark.parametrize(
    "headers", [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}]
)
def test_content_type_json_is_mandatory(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut], headers: dict[str, str]
) -> None:
    r = post(http, devices[0].token, [[now_ms(), 1]], headers=headers)
    assert (r.status_code, r.json()) == (400, blynk_error("Unknown content type."))
    assert history(stack, devices[0].id, 0) == []


def test_json_with_a_charset_is_json(http: httpx.Client, devices: list[DeviceOut]) -> None:
    r = post(http, devices[0].token, [[now_ms(), 1]], headers={"Content-Type": "application/json; charset=utf-8"})
    assert (r.status_code, r.text) == (200, "")


def test_more_than_10000_points_is_too_much_data(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    t = now_ms()
    r = post(http, devices[0].token, [[t - i, 1] for i in range(10_001)])
    assert (r.status_code, r.json()) == (
        400,
        blynk_error("Too much data in batch. Maximum batch size is 10000 points."),
    )
    assert history(stack, devices[0].id, 0) == []


def test_a_body_above_16_mb_is_too_much_data_in_blynks_shape(http: httpx.Client, devices: list[DeviceOut]) -> None:
    r = post(http, devices[0].token, b"[" + b" " * (17 * 1024 * 1024) + b"]")
    assert (r.status_code, r.json()) == (
        400,
        blynk_error("Too much data in batch. Maximum batch size is 10000 points."),
    )


@pytest.mark.parametrize("offset_ms", [-31 * DAY_MS, 31 * DAY_MS, -(10**15)])
def test_timestamps_more_than_a_month_away_are_refused(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut], offset_ms: int
) -> None:
    t = now_ms()
    r = post(http, devices[0].token, [[t, 1], [t + offset_ms, 2]])
    assert (r.status_code, r.json()) == (
        400,
        blynk_error("Timestamp is out of range. Timestamps should be within one month of the current time."),
    )
    assert history(stack, devices[0].id, 0) == []


@pytest.mark.parametrize(
    ("query", "body", "message"),
    [
        ({"pin": "v0"}, "[[1, 2]", "Request with incorrect parameters"),
        ({"pin": "v0"}, '{"ts": 1}', "Request with incorrect parameters"),
        ({"pin": "v0"}, "[[1, 2, 3]]", "Request with incorrect parameters"),
        ({"pin": "v0"}, '[["yesterday", 2]]', "Request with incorrect parameters"),
        ({}, "[]", "Wrong pin format."),
        ({"pin": "x1"}, "[]", "Wrong pin format."),
        ({"pin": "v99"}, "[]", "No datastream setup for that pin."),
        ({"dataStreamId": "abc"}, "[]", "Wrong dataStreamId format."),
    ],
)
def test_bad_requests_get_blynks_texts(
    http: httpx.Client, devices: list[DeviceOut], query: dict[str, str], body: str, message: str
) -> None:
    r = http.post("/external/api/batch/update", params={"token": devices[0].token, **query}, headers=JSON, content=body)
    assert (r.status_code, r.json()) == (400, blynk_error(message))


def test_token_errors(http: httpx.Client) -> None:
    r = http.post("/external/api/batch/update?pin=v0", headers=JSON, content="[]")
    assert (r.status_code, r.json()) == (400, blynk_error("No token provided."))
    r = http.post("/external/api/batch/update?pin=v0&token=" + "x" * 32, headers=JSON, content="[]")
    assert (r.status_code, r.json()) == (400, blynk_error("Invalid token."))


def test_data_stream_id_names_the_datastream(http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]) -> None:
    r = post(http, devices[0].token, [[now_ms(), "via id"]], pin="", dataStreamId="2")
    assert (r.status_code, r.text) == (200, "")
    assert [row[2] for row in history(stack, devices[0].id, 2)] == ["via id"]


def test_daily_import_limit_refuses_the_whole_request(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    dev, other, t = devices[0], devices[1], now_ms()
    assert post(http, dev.token, [[t - i, 1] for i in range(9_998)]).status_code == 200
    r = post(http, dev.token, [[t - HOUR_MS - i, 2] for i in range(3)])
    assert (r.status_code, r.json()) == (403, blynk_error("Data import limit has been reached."))
    assert len(history(stack, dev.id, 0)) == 9_998
    assert sum(row[4] for row in rollups(stack, "history_hour", dev.id, 0)) == 9_998  # nor in the rollups
    assert post(http, dev.token, [[t - HOUR_MS, 2], [t - HOUR_MS - 1, 2]]).status_code == 200
    assert post(http, other.token, [[t, 3]]).status_code == 200  # the limit is per device


def test_the_get_form_of_batch_update_still_works(http: httpx.Client, devices: list[DeviceOut]) -> None:
    r = http.get(f"/external/api/batch/update?token={devices[0].token}&v0=1.5&v1=1")
    assert (r.status_code, r.text) == (200, "")


def test_without_save_raw_numbers_are_kept_only_as_rollups(
    http: httpx.Client, stack: StackConfig, plain: DeviceOut
) -> None:
    hour = (now_ms() // HOUR_MS - 2) * HOUR_MS
    points = [[hour + 1000, 20], [hour + 2000, 22.5], [hour + 61_000, 30], [hour + HOUR_MS + 5000, 10]]
    assert post(http, plain.token, points).status_code == 200
    assert history(stack, plain.id, 0) == []
    assert rollups(stack, "history_minute", plain.id, 0) == [
        (hour, 20.0, 22.5, 42.5, 2),
        (hour + 60_000, 30.0, 30.0, 30.0, 1),
        (hour + HOUR_MS, 10.0, 10.0, 10.0, 1),
    ]
    assert rollups(stack, "history_hour", plain.id, 0) == [
        (hour, 20.0, 30.0, 72.5, 3),
        (hour + HOUR_MS, 10.0, 10.0, 10.0, 1),
    ]
    assert http.get(f"/external/api/get?token={plain.token}&v0").text == "10.0"


@pytest.mark.parametrize(
    ("pin", "value", "latest"), [("v2", "door open", "door open"), ("v3", [24.1, 56.9], "24.1,56.9")]
)
def test_without_save_raw_strings_and_locations_are_not_history(
    http: httpx.Client, stack: StackConfig, plain: DeviceOut, pin: str, value: Any, latest: str
) -> None:
    assert post(http, plain.token, [[now_ms() - 1000, value]], pin=pin).status_code == 200
    assert history(stack, plain.id, int(pin[1:])) == []
    assert rollups(stack, "history_minute", plain.id, int(pin[1:])) == []
    assert http.get(f"/external/api/get?token={plain.token}&{pin}").text == latest  # the latest value is kept
