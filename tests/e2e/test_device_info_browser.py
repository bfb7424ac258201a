"""The device actions menu's "Request info" in a real Chromium, at desktop and phone size
(390x844): a device on openblynk's device_sdk answers and the menu shows its firmware with the
time the answer arrived, which the Info tab shows too; a paho device (as Blynk's own libraries)
ignores the request and the menu says it did not answer. Screenshots go to
``.pytest-artifacts/console/device-info-*.png``; with ``OPENBLYNK_README_SCREENSHOT=1`` the
phone's answered menu is also the README's ``docs/console-device-actions.png``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from backend.transfer.schemas import DeviceOut
from device_sdk import Device
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
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice

TIMEOUT_MS = 20_000  # a bound for waits (the menu waits 10 s for an answer), not a timing claim


@dataclass
class Seeded:
    acc: AccountsStack
    sdk: DeviceOut
    paho: DeviceOut


@pytest.fixture(scope="module")
def seeded(pg_server: str, template_db: str) -> Iterator[Seeded]:
    for acc in start_accounts_stack(pg_server, template_db, "infoui"):
        made = []
        with acc.login(*ROOT_ADMIN) as api:
            template = api.post("/api/console/templates", json={"name": "Pump"}).json()
            for name in ("Pump on device_sdk", "Pump on a Blynk library"):
                r = api.post("/api/console/devices", json={"name": name, "template_id": template["id"]})
                assert r.status_code == 201, r.text
                d = r.json()
                made.append(
                    DeviceOut(name=name, id=d["id"], token=d["token"], template="", template_id="", created=True)
                )
        yield Seeded(acc, made[0], made[1])


@pytest.fixture(params=sorted(SIZES))
def sized(request: pytest.FixtureRequest, browser: Browser, seeded: Seeded) -> Iterator[tuple[Page, str]]:  # noqa: F811
    """A signed-in page at one of :data:`SIZES`, and that size's name."""
    with signed_in(browser, seeded.acc.base_url, request.param, TIMEOUT_MS) as page:
        yield page, request.param


def _request_info(page: Page, base_url: str, database_url: str, device: DeviceOut) -> Locator:
    wait_online(database_url, device.id)
    page.goto(f"{base_url}/devices/{device.id}?tab=info")
    expect(page.locator(f'[data-presence="{device.id}"]').first).to_have_text("Online")
    menu = page.locator("#device-menu")
    menu.locator("summary").click()
    menu.get_by_role("button", name="Request info").click()
    return menu.locator("[data-device-menu-result]")


def test_a_device_sdk_device_answers_and_its_info_is_shown(sized: tuple[Page, str], seeded: Seeded) -> None:
    page, size = sized
    errors = no_page_errors(page)
    device = Device(seeded.sdk.token, host="127.0.0.1", port=seeded.acc.config.mqtt_port, firmware_version="1.0.0")
    with device, seeded.acc.db() as db:
        sql = "SELECT online, fw_version FROM device WHERE id = %s"
        wait_for(lambda: db.execute(sql, (seeded.sdk.id,)).fetchone() == (True, "1.0.0"), message="the connect's info")
        device.set_firmware(f"1.1.0-{size}", "Dec 06 2026 12:00:00")  # only an answer carries it
        result = _request_info(page, seeded.acc.base_url, seeded.acc.config.database_url, seeded.sdk)
        expect(page.locator("[data-info-firmware]")).to_have_text("1.0.0")
        expect(result).to_have_attribute("data-outcome", "ok", timeout=TIMEOUT_MS)
        expect(result).to_have_text(
            re.compile(rf"^Info received at \d\d:\d\d:\d\d UTC: firmware 1\.1\.0-{size} \(build Dec 06 2026 12:00:00\)")
        )
        expect(page.locator("[data-info-firmware]")).to_have_text(f"1.1.0-{size} (build Dec 06 2026 12:00:00)")
        shot(page, f"device-info-answered-{size}")
        if size == "phone":
            readme_view(page, "console-device-actions")
    assert errors == []


def test_a_device_that_ignores_the_request_is_said_not_to_answer(
    sized: tuple[Page, str], seeded: Seeded, paho_device: ConnectDevice
) -> None:
    page, size = sized
    errors = no_page_errors(page)
    device = paho_device(seeded.acc.config, seeded.paho)
    result = _request_info(page, seeded.acc.base_url, seeded.acc.config.database_url, seeded.paho)
    expect(result).to_have_text(re.compile("^Waiting"))
    expect(result).to_have_attribute("data-outcome", "bad", timeout=TIMEOUT_MS)
    expect(result).to_have_text(re.compile(r"did not answer within 10 s: only devices on openblynk's device_sdk"))
    shot(page, f"device-info-no-answer-{size}")
    assert device.next(topic_prefix="downlink/get/info/mcu")[0] == "downlink/get/info/mcu"
    assert errors == []
