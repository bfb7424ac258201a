"""Issue #19's Done-when for mobile dashboards, end to end in a real Chromium against the real
broker and app: an administrator builds a template's mobile dashboard in the console's template
editor (palette, inspector, keyboard moves and resizes, a mouse drag, a phone-shaped preview)
and saves it; a user of a customer organization opens the device in the app (``/app``) at phone
size (390x844), sees the widgets in the saved order, switches the relay (a paho device receives
the downlink), picks a mode on the segmented switch, and watches the chart (the last hour's
history, then live values the paho device publishes) and the labeled value update. Screenshots
``mobile-*.png`` under ``.pytest-artifacts/console/``; with ``OPENBLYNK_README_SCREENSHOT=1`` also
the README's ``docs/mobile-editor.png`` and ``docs/mobile-app-dashboard.png``."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from backend.transfer.schemas import DeviceOut
from tests.e2e.console_browser import ARTIFACTS, ROOT, browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.paho import ConnectDevice

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
USER_EMAIL, USER_PASSWORD = "household@example.com", "a-good-password-1"


def readme_shot(page: Page, name: str) -> None:
    """A screenshot as a test artifact, and for the README when asked to."""
    shot(page, name)
    if os.environ.get("OPENBLYNK_README_SCREENSHOT") == "1":
        shutil.copyfile(ARTIFACTS / f"{name}.png", ROOT / "docs" / f"{name}.png")


@pytest.fixture(scope="module")
def acc(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    yield from start_accounts_stack(pg_server, template_db, "mobiledash")


def sign_in(page: Page, acc: AccountsStack, email: str, password: str, then: str) -> None:
    page.goto(f"{acc.base_url}/login?next={quote(then, safe='')}")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def make_world(acc: AccountsStack, root: Api, suffix: str) -> tuple[int, DeviceOut]:
    """A greenhouse template (temperature, relay, mode), a customer organization with a user
    who may see and control its devices, and a device there with an hour of temperatures."""
    tid = root.post("/api/console/templates", json={"name": f"Greenhouse {suffix}"}).json()["id"]
    for ds in (
        {"pin": "V0", "name": "Temperature", "type": "double", "min": -40, "max": 85, "units": "°C", "save_raw": True},
        {"pin": "V1", "name": "Relay", "type": "integer", "min": 0, "max": 1},
        {"pin": "V2", "name": "Mode", "type": "integer", "min": 0, "max": 2},
    ):
        r = root.post(f"/api/console/templates/{tid}/datastreams", json=ds)
        assert r.status_code == 200, r.text
    home = root.post("/api/orgs", json={"name": f"Home {suffix}"}).json()["id"]
    household = {"name": f"Household {suffix}", "permissions": ["devices.view", "devices.edit"], "org_id": home}
    role = root.post("/api/roles", json=household)
    assert role.status_code == 201, role.text
    invite_and_join(acc, root, home, USER_EMAIL, role.json()["id"], password=USER_PASSWORD).close()
    name = f"Greenhouse {suffix}"
    made = root.post("/api/console/devices", json={"name": name, "template_id": tid, "org_id": home})
    assert made.status_code == 201, made.text
    device = DeviceOut(name, made.json()["id"], made.json()["token"], name, "", True)
    now = datetime.now(UTC)
    history = [[int((now - timedelta(minutes=m)).timestamp() * 1000), 15 + m % 4] for m in range(50, 5, -5)]
    with httpx.Client(base_url=acc.base_url, timeout=10) as http:
        r = http.post("/external/api/batch/update", params={"token": device.token, "pin": "V0"}, json=history)
        assert r.status_code == 200, r.text
    return tid, device


def build_dashboard(page: Page, acc: AccountsStack, tid: int) -> None:
    """The administrator's part: four widgets, set up, moved with the keyboard and a drag, saved."""
    editor = page.locator("#mobile-editor")
    phone = page.locator("#phone")
    inspector = page.locator("#mobile-inspector")
    palette = page.get_by_role("complementary", name="Widgets")

    palette.get_by_role("button", name="Switch", exact=True).click()
    inspector.get_by_label("Datastream").select_option(label="Relay (V1, integer)")
    inspector.get_by_label("Title").fill("Pump")
    inspector.get_by_label("Title").press("Tab")
    palette.get_by_role("button", name="Segmented switch").click()
    inspector.get_by_label("Datastream").select_option(label="Mode (V2, integer)")
    expect(inspector.get_by_label("Options (value=label, one a line)")).to_have_value("0=0\n1=1\n2=2")
    inspector.get_by_label("Options (value=label, one a line)").fill("0=Eco\n1=Comfort\n2=Boost")
    inspector.get_by_label("Title").fill("Mode")
    inspector.get_by_label("Title").press("Tab")
    palette.get_by_role("button", name="Labeled value").click()
    inspector.get_by_label("Format (/pin/ is the value)").fill("Inside: /pin/ °C")
    inspector.get_by_label("Format (/pin/ is the value)").press("Tab")
    palette.get_by_role("button", name="Chart").click()
    inspector.get_by_label("History shown").select_option("1h")
    expect(phone.locator(".mwidget")).to_have_count(4)
    expect(phone.locator(".mwidget .mwidget-title")).to_have_text(["Pump", "Mode", "Temperature", "Temperature"])

    # the keyboard: the chart moves up to the top, the labeled value narrows to 3 columns
    chart = phone.locator('.mwidget[data-type="chart"]')
    chart.focus()
    for _ in range(3):
        page.keyboard.press("ArrowUp")
    expect(phone.locator(".mwidget").first).to_have_attribute("data-type", "chart")
    expect(phone.locator('.mwidget[data-type="chart"]')).to_be_focused()
    labeled = phone.locator('.mwidget[data-type="labeled_value"]')
    labeled.focus()
    page.keyboard.press("Shift+ArrowLeft")
    expect(inspector).to_contain_text("size 3 × 1")
    # the mouse: the labeled value dragged onto the switch takes its place
    box_from = labeled.bounding_box()
    box_to = phone.locator('.mwidget[data-type="switch"]').bounding_box()
    assert box_from is not None and box_to is not None
    page.mouse.move(box_from["x"] + 20, box_from["y"] + 20)
    page.mouse.down()
    page.mouse.move(box_to["x"] + 20, box_to["y"] + 20, steps=8)
    page.mouse.up()
    types = ["chart", "labeled_value", "switch", "segmented"]
    expect(phone.locator(".mwidget")).to_have_count(4)
    assert [phone.locator(".mwidget").nth(i).get_attribute("data-type") for i in range(4)] == types
    # the phone preview is a phone column: 4 columns on at most 390 px
    width = page.evaluate("document.querySelector('.phone').getBoundingClientRect().width")
    assert width <= 390, width
    page.get_by_role("button", name="Save mobile dashboard").click()
    expect(editor).to_have_attribute("data-saved", "4")
    expect(inspector).to_contain_text("Place: 2 of 4; size 3 × 1.")  # the saved widgets, whole again
    expect(phone.locator('.mwidget[data-type="switch"]')).to_have_attribute("aria-label", "3. Switch: Pump, 2 × 1")
    expect(page.locator("#mobile-error")).to_have_text("")
    readme_shot(page, "mobile-editor")


def test_an_admin_builds_a_mobile_dashboard_and_a_user_controls_the_device_with_it(
    acc: AccountsStack,
    browser: Browser,  # noqa: F811 (fixture)
    paho_device: ConnectDevice,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    root = acc.login(*ROOT_ADMIN)
    tid, info = make_world(acc, root, suffix)

    admin = browser.new_context(viewport=DESKTOP)
    admin.set_default_timeout(TIMEOUT_MS)
    page = admin.new_page()
    admin_errors = no_page_errors(page)
    sign_in(page, acc, *ROOT_ADMIN, then=f"/templates/{tid}?tab=mobile")
    expect(page.get_by_role("link", name="Mobile dashboard")).to_have_attribute("aria-current", "page")
    build_dashboard(page, acc, tid)
    saved = root.get(f"/api/console/templates/{tid}/mobile-dashboard").json()["widgets"]
    assert [(w["type"], w["pin"], w.get("w", 2)) for w in saved] == [
        ("chart", 0, 4),
        ("labeled_value", 0, 3),
        ("switch", 1, 2),
        ("segmented", 2, 4),
    ]
    assert saved[3]["options"] == [
        {"value": 0, "label": "Eco"},
        {"value": 1, "label": "Comfort"},
        {"value": 2, "label": "Boost"},
    ]
    assert admin_errors == []
    admin.close()
    root.close()

    # the user, on a phone, in the app
    device = paho_device(acc.config, info)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    app = context.new_page()
    errors = no_page_errors(app)
    sign_in(app, acc, USER_EMAIL, USER_PASSWORD, then="/app")
    expect(app).to_have_url(f"{acc.base_url}/app")
    row = app.locator(f'a.row[data-device="{info.id}"]')
    expect(row.locator("[data-presence]")).to_have_text("Online")
    row.click()
    expect(app.locator("#app-title")).to_have_text(info.name)
    expect(app.locator("body")).to_have_attribute("data-live", "connected")
    dashboard = app.locator("#mobile-dashboard")
    expect(dashboard.locator("section.mw")).to_have_count(4)
    expect(dashboard.locator("section.mw h3")).to_have_text(["Temperature", "Temperature", "Pump", "Mode"])
    chart = dashboard.locator("section.mw-chart")
    expect(chart).to_have_attribute("data-history", "loaded")
    expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))  # the last hour, from history
    stored = int(chart.get_attribute("data-points") or 0)

    # switch the relay: the device receives it
    relay = app.get_by_role("switch", name="Pump")
    expect(relay).to_have_attribute("aria-checked", "false")
    relay.tap()
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Relay", b"1")
    expect(relay).to_have_attribute("aria-checked", "true")
    # pick a mode on the segmented switch
    app.get_by_role("radio", name="Boost").tap()
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Mode", b"2")
    expect(app.get_by_role("radio", name="Boost")).to_have_attribute("aria-checked", "true")
    expect(app.get_by_role("radio", name="Eco")).to_have_attribute("aria-checked", "false")

    # the device publishes: the chart and the labeled value update live
    device.publish("ds/Temperature", "21.5")
    expect(chart).to_have_attribute("data-last", "21.5")
    expect(dashboard.locator("section.mw-labeled_value output")).to_have_text("Inside: 21.5 °C")
    device.publish("ds/Temperature", "23.5")
    expect(chart).to_have_attribute("data-last", "23.5")
    assert int(chart.get_attribute("data-points") or 0) == stored + 2
    expect(dashboard.locator("section.mw-labeled_value output")).to_have_text("Inside: 23.5 °C")
    # the device switches the relay off itself: the app follows
    device.publish("ds/Relay", "0")
    expect(relay).to_have_attribute("aria-checked", "false")
    assert app.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # nothing off the side
    columns = app.evaluate(
        "[...document.querySelectorAll('#mobile-dashboard section.mw')].map(s => Math.round(s.getBoundingClientRect().width))"
    )
    assert columns[0] > columns[2] * 1.5, columns  # the chart spans the phone, the switch half of it
    expect(app.locator("#toast")).to_have_css("opacity", "0")  # the picture without "Sent"
    readme_shot(app, "mobile-app-dashboard")
    device.close()
    assert errors == []
    context.close()
