"""The organization settings pages and a device's CSV export in a real Chromium, at desktop and
phone size (390x844): the actions log filtered as one types (htmx) with its CSV export; an OAuth2
client made with chosen permissions, its secret shown once, then revoked; a datastream's range
downloaded from the device's Datastreams tab; a device's actions menu pinging a real (paho)
device and showing the round trip, rebooting it, and deleting another device. Screenshots go to
``.pytest-artifacts/console/settings-*.png``; with ``OPENBLYNK_README_SCREENSHOT=1`` the desktop
actions log, new OAuth2 client and locations pages are also the README's ``docs/console-*.png``."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from backend.transfer.schemas import DeviceOut
from tests.e2e.console_browser import (  # noqa: F401 (browser: a fixture)
    SIZES,
    browser,
    no_page_errors,
    readme_view,
    shot,
    signed_in,
    wait_online,
)
from tests.support.accounts import ROOT_ADMIN, AccountsStack, start_accounts_stack
from tests.support.paho import ConnectDevice

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim


@dataclass
class Seeded:
    acc: AccountsStack
    device: int
    token: str
    template: int
    start: datetime
    """The first stored point's time (60 points, one a minute)."""


@pytest.fixture(scope="module")
def seeded(pg_server: str, template_db: str) -> Iterator[Seeded]:
    for acc in start_accounts_stack(pg_server, template_db, "settingsui"):
        with acc.login(*ROOT_ADMIN) as api:
            template = api.post("/api/console/templates", json={"name": "Boiler"}).json()
            r = api.post(
                f"/api/console/templates/{template['id']}/datastreams",
                json={"pin": "V0", "name": "Water", "type": "double", "min": 0, "max": 100, "save_raw": True},
            )
            assert r.status_code == 200, r.text
            r = api.post("/api/console/devices", json={"name": "Cellar boiler", "template_id": template["id"]})
            assert r.status_code == 201, r.text
            device = r.json()
            for name in ("Night shift", "Day shift"):
                assert api.post("/api/roles", json={"name": name, "permissions": ["devices.view"]}).status_code == 201
        start = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
        points = [[int((start + timedelta(minutes=m)).timestamp() * 1000), 40 + m % 10] for m in range(60)]
        r = httpx.post(
            f"{acc.base_url}/external/api/batch/update", params={"token": device["token"], "pin": "V0"}, json=points
        )
        assert r.status_code == 200, r.text
        yield Seeded(acc, device["id"], device["token"], template["id"], start)


@pytest.fixture(params=sorted(SIZES))
def sized(request: pytest.FixtureRequest, browser: Browser, seeded: Seeded) -> Iterator[tuple[Page, str]]:  # noqa: F811
    """A signed-in page at one of :data:`SIZES`, and that size's name."""
    with signed_in(browser, seeded.acc.base_url, request.param, TIMEOUT_MS, accept_downloads=True) as page:
        yield page, request.param


def _open_menu(page: Page) -> None:
    if page.locator("[data-toggle=nav]").is_visible():  # phone: the menu folds behind a button
        page.locator("[data-toggle=nav]").click()


def test_actions_log_filters_as_one_types_and_exports_csv(sized: tuple[Page, str], seeded: Seeded) -> None:
    page, size = sized
    errors = no_page_errors(page)
    _open_menu(page)
    page.get_by_role("link", name="Actions log").click()
    expect(page).to_have_url(re.compile(r"/audit$"))
    expect(page.locator("#audit-rows")).to_contain_text("role.create")
    page.get_by_label("Action").fill("role.create")
    expect(page).to_have_url(re.compile(r"action=role\.create"))
    expect(page.locator("#audit-rows tbody tr")).to_have_count(2)
    expect(page.locator("#audit-total")).to_have_text("2")
    expect(page.locator("#audit-export")).to_have_attribute("href", re.compile(r"action=role\.create"))
    shot(page, f"settings-audit-{size}")
    if size == "desktop":
        readme_view(page, "console-audit-log")
    with page.expect_download() as got:
        page.locator("#audit-export").click()
    path = got.value.path()
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[0][:5] == ["id", "at", "user", "ip", "action"]
    assert [r[4] for r in rows[1:]] == ["role.create", "role.create"]
    assert ['"name": "Night shift"' in r[7] for r in rows[1:]] == [True, False]  # oldest first
    page.get_by_label("User").fill("nobody-here")
    expect(page.locator("#audit-rows")).to_contain_text("No entries.")
    assert errors == []


def test_an_oauth2_client_is_made_its_secret_shown_once_and_revoked(sized: tuple[Page, str], seeded: Seeded) -> None:
    page, size = sized
    errors = no_page_errors(page)
    _open_menu(page)
    page.get_by_role("link", name="OAuth2 clients").click()
    expect(page).to_have_url(re.compile(r"/oauth2-clients$"))
    page.get_by_label("Name", exact=True).fill(f"Reporting {size}")
    page.locator("input[name=permissions][value='devices.view']").check()
    page.locator("input[name=permissions][value='templates.view']").check()
    page.get_by_role("button", name="Create client").click()
    shown = page.locator("#new-secret")
    expect(shown).to_be_visible()
    secret = page.locator("[data-new-client-secret]").inner_text()
    client_id = page.locator("[data-new-client-id]").inner_text()
    assert len(secret) >= 30 and client_id
    shot(page, f"settings-oauth2-secret-{size}")
    if size == "desktop":
        readme_view(page, "console-oauth2-clients")
    r = httpx.post(
        f"{seeded.acc.base_url}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert r.status_code == 200, r.text
    page.get_by_role("link", name="Done").click()
    row = page.locator("#client-rows tr", has_text=f"Reporting {size}")
    expect(row).to_contain_text("devices.view")
    expect(row).to_contain_text("templates.view")
    assert secret not in page.content()  # shown once
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_contain_text("revoked")
    shot(page, f"settings-oauth2-{size}")
    r = httpx.post(
        f"{seeded.acc.base_url}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_client", r.text
    assert errors == []


def test_an_integration_client_is_switched_in_the_console(sized: tuple[Page, str], seeded: Seeded) -> None:
    page, size = sized
    errors = no_page_errors(page)
    _open_menu(page)
    page.get_by_role("link", name="OAuth2 clients").click()
    expect(page).to_have_url(re.compile(r"/oauth2-clients$"))
    page.get_by_label("Name", exact=True).fill(f"Node-RED {size}")
    page.locator("form[data-client-form] input[name=mqtt_enabled]").check()
    page.get_by_role("button", name="Create client").click()
    expect(page.locator("#new-secret")).to_be_visible()
    client_id = page.locator("[data-new-client-id]").inner_text()
    page.get_by_role("link", name="Done").click()
    row = page.locator("#client-rows tr", has_text=f"Node-RED {size}")
    expect(row).to_contain_text(f"integration:{client_id}")
    expect(page.locator("#mqtt-topics")).to_contain_text("dev/<device id>/set/<datastream>")
    shot(page, f"settings-oauth2-mqtt-{size}")
    row.locator("input[data-mqtt-toggle]").uncheck()
    expect(row).not_to_contain_text(f"integration:{client_id}")
    expect(row.locator("input[data-mqtt-toggle]")).not_to_be_checked()
    assert errors == []


def test_a_datastream_range_downloads_as_csv(sized: tuple[Page, str], seeded: Seeded) -> None:
    page, size = sized
    errors = no_page_errors(page)
    page.goto(f"{seeded.acc.base_url}/devices/{seeded.device}?tab=datastreams")
    form = page.locator("[data-export-form]")
    expect(form.locator("select[name=pin] option")).to_have_text(["Water (V0)"])
    form.locator("input[name=start]").fill(seeded.start.strftime("%Y-%m-%dT%H:%M:%S"))
    form.locator("input[name=end]").fill((seeded.start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S"))
    shot(page, f"settings-device-export-{size}")
    with page.expect_download() as got:
        form.get_by_role("button", name="Export CSV").click()
    rows = list(csv.reader(io.StringIO(got.value.path().read_text())))
    assert rows[0] == ["ts", "time", "value"]
    assert [float(r[2]) for r in rows[1:]] == [40.0 + m % 10 for m in range(30)]  # [start, start + 30 min)
    form.locator("input[name=end]").fill(seeded.start.strftime("%Y-%m-%dT%H:%M:%S"))
    form.get_by_role("button", name="Export CSV").click()
    expect(form.locator(".form-error")).to_have_text("Choose a range whose end is after its start.")
    assert errors == []


def test_the_actions_menu_pings_reboots_and_deletes(
    sized: tuple[Page, str], seeded: Seeded, paho_device: ConnectDevice
) -> None:
    page, size = sized
    errors = no_page_errors(page)
    info = DeviceOut(
        name="Cellar boiler", id=seeded.device, token=seeded.token, template="", template_id="", created=True
    )
    device = paho_device(seeded.acc.config, info)  # paho acknowledges downlink/ping (QoS 1)
    wait_online(seeded.acc.config.database_url, seeded.device)
    page.goto(f"{seeded.acc.base_url}/devices/{seeded.device}")
    expect(page.locator(f'[data-presence="{seeded.device}"]')).to_have_text("Online")
    menu = page.locator("#device-menu")
    menu.locator("summary").click()
    menu.get_by_role("button", name="Ping").click()
    result = menu.locator("[data-device-menu-result]")
    expect(result).to_have_attribute("data-outcome", "ok")
    expect(result).to_have_text(re.compile(r"^Round trip \d+\.\d ms$"))
    shot(page, f"settings-device-menu-{size}")
    assert device.next(topic_prefix="downlink/ping")[0] == "downlink/ping"
    page.once("dialog", lambda d: d.accept())
    menu.get_by_role("button", name="Reboot").click()
    expect(result).to_have_text("Reboot sent")
    assert device.next(topic_prefix="downlink/reboot")[0] == "downlink/reboot"

    with seeded.acc.login(*ROOT_ADMIN) as api:
        doomed = api.post("/api/console/devices", json={"name": f"Spare {size}", "template_id": seeded.template}).json()
    page.goto(f"{seeded.acc.base_url}/devices/{doomed['id']}")
    page.locator("#device-menu summary").click()
    page.once("dialog", lambda d: d.accept())
    page.locator("#device-menu").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/devices$"))
    expect(page.locator("main")).not_to_contain_text(f"Spare {size}")
    assert errors == []


def test_a_location_is_made_given_a_device_and_deleted(sized: tuple[Page, str], seeded: Seeded) -> None:
    page, size = sized
    errors = no_page_errors(page)
    _open_menu(page)
    page.get_by_role("link", name="Locations").click()
    expect(page).to_have_url(re.compile(r"/locations$"))
    form = page.locator("#new-location form")
    form.get_by_label("Name").fill(f"Riga {size}")
    form.get_by_label("Address").fill("Brivibas iela 1")
    form.get_by_label("Latitude").fill("56.9496")
    form.get_by_label("Longitude").fill("24.1052")
    form.get_by_label("Time zone").fill("Europe/Riga")
    form.get_by_role("button", name="Create location").click()
    row = page.locator("#location-rows tr", has_text=f"Riga {size}")
    expect(row).to_contain_text("56.94960, 24.10520")
    expect(row.locator("[data-location-count]")).to_have_text("0")
    location_id = row.get_attribute("data-location")
    card = page.locator(f"#location-{location_id}")
    card.get_by_label("Cellar boiler").check()
    card.get_by_role("button", name="Save devices").click()
    expect(row.locator("[data-location-count]")).to_have_text("1")
    shot(page, f"settings-locations-{size}")
    page.reload()
    expect(page.locator(f"#location-{location_id}").get_by_label("Cellar boiler")).to_be_checked()
    if size == "desktop":
        readme_view(page, "console-locations")
    page.once("dialog", lambda d: d.accept())
    page.locator(f'tr[data-location="{location_id}"]').get_by_role("button", name="Delete").click()
    expect(page.locator(f'tr[data-location="{location_id}"]')).to_have_count(0)
    assert errors == []
