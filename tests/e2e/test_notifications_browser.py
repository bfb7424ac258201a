"""The bell in a real Chromium: a device (paho) logs an event whose definition notifies the
organization's admins, and the open console page's count rises without a reload; the
notifications page lists it and marks it read. Screenshots: ``notifications-bell.png`` and
``notifications-page.png`` under ``.pytest-artifacts/console/``."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Browser, expect

from backend.transfer.schemas import DeviceOut
from tests.e2e.console_browser import browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN, Api
from tests.support.paho import ConnectDevice
from tests.support.stack import StackConfig

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim


def test_the_bell_counts_live_and_the_page_marks_read(
    stack: StackConfig,
    browser: Browser,  # noqa: F811 (fixture)
    paho_device: ConnectDevice,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    event = {
        "code": "leak",
        "name": "Water leak",
        "type": "critical",
        "notify": {"in_app": True, "recipients": ["admins"]},
    }
    with Api(stack.base_url) as api:
        api.login(*ROOT_ADMIN)
        template = api.post("/api/console/templates", json={"name": f"Cellar {suffix}"}).json()["id"]
        assert api.post(f"/api/console/templates/{template}/events", json=event).status_code == 200
        made = api.post("/api/console/devices", json={"name": f"Cellar {suffix}", "template_id": template}).json()
        assert api.post("/api/console/notifications/read-all").status_code == 200  # a bell without a count
    info = DeviceOut(f"Cellar {suffix}", made["id"], made["token"], f"Cellar {suffix}", "", True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = no_page_errors(page)
    page.goto(f"{stack.base_url}/login?next=%2Fdevices")
    page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
    page.get_by_label("Password").fill(ROOT_ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/devices$"))
    expect(page.locator("body")).to_have_attribute("data-bell-socket", "connected", timeout=TIMEOUT_MS)
    count = page.locator("[data-bell-count]")
    expect(count).to_be_hidden()

    device = paho_device(stack, info)
    device.publish("event/leak", "Basement floor wet", qos=1)
    expect(count).to_have_text("1", timeout=TIMEOUT_MS)  # no reload: the socket told the page
    expect(count).to_be_visible()
    expect(page.locator("[data-bell]")).to_have_attribute("aria-label", "Notifications: 1 unread")
    shot(page, "notifications-bell")

    page.locator("[data-bell]").click()
    expect(page).to_have_url(re.compile(r"/notifications$"))
    row = page.locator("#notifications tbody tr.unread")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"Cellar {suffix}: Water leak")
    expect(row).to_contain_text("Basement floor wet")
    shot(page, "notifications-page")
    row.get_by_role("button", name="Mark read").click()
    expect(page.locator("#notifications tbody tr.unread")).to_have_count(0)
    expect(page.locator("#notifications-unread")).to_have_text("0 unread")
    expect(count).to_be_hidden()
    assert errors == []
    context.close()
