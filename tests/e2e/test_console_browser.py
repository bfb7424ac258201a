"""The console in a real browser (Chromium through Playwright) against the real broker and app:
sign in, create a template with datastreams and a dashboard, add a device, watch a value a
paho device publishes appear live, flip a switch the device receives (and confirms), open a
chart over imported history and zoom into it. Screenshots of the main pages are saved under
``.pytest-artifacts/console/``."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Browser, Page, expect

from backend.transfer.schemas import DeviceOut
from tests.e2e.console_browser import browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN
from tests.support.paho import ConnectDevice
from tests.support.stack import StackConfig

TIMEOUT_MS = 15_000


def sign_in(page: Page, stack: StackConfig) -> None:
    page.goto(f"{stack.base_url}/templates")
    expect(page).to_have_url(f"{stack.base_url}/login?next=%2Ftemplates")
    shot(page, "01-login")
    page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
    page.get_by_label("Password").fill("wrong-password-123")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".form-error")).to_have_text("wrong e-mail or password")
    page.get_by_label("Password").fill(ROOT_ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.base_url}/templates")


def create_template(page: Page, name: str) -> str:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create template").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    form = page.locator("#new-datastream")
    for pin, ds, kind, lo, hi, options in (
        ("V0", "Temperature", "double", "-40", "85", ["Save raw data"]),
        ("V1", "Power", "integer", "0", "1", ["Wait for confirmation from device"]),
        ("V2", "Where", "location", "", "", []),
    ):
        form.get_by_label("Virtual pin").fill(pin)
        form.get_by_label("Name").fill(ds)
        form.get_by_label("Type").select_option(kind)
        form.get_by_label("Min").fill(lo)
        form.get_by_label("Max").fill(hi)
        for option in options:
            form.get_by_label(option).check()
        form.get_by_role("button", name="Add datastream").click()
        expect(page.locator("table.list")).to_contain_text(ds)
        form = page.locator("#new-datastream")
    form.get_by_label("Virtual pin").fill("V0")
    form.get_by_label("Name").fill("Duplicate")
    form.get_by_role("button", name="Add datastream").click()
    expect(form.locator(".form-error")).to_contain_text("already has a datastream on V0")
    shot(page, "02-template-datastreams")
    return page.url.split("/templates/")[1].split("?")[0]


def design_dashboard(page: Page) -> None:
    page.get_by_role("link", name="Web dashboard").click()
    palette = page.locator(".palette")
    inspector = page.locator("#inspector")
    palette.get_by_role("button", name="Value display").click()
    inspector.get_by_label("Title").fill("Temperature now")
    palette.get_by_role("button", name="Switch").click()
    inspector.get_by_label("Datastream").select_option(label="Power (V1, integer)")
    inspector.get_by_label("Title").fill("Power")
    palette.get_by_role("button", name="Chart").click()
    inspector.get_by_label("Title").fill("Temperature history")
    palette.get_by_role("button", name="Map").click()
    canvas = page.locator("#canvas")
    expect(canvas.locator(".widget")).to_have_count(4)
    # drag the map one column to the right, then make it one row taller by its corner
    widget = canvas.locator(".widget").nth(3)
    before = widget.get_attribute("style") or ""
    box = widget.bounding_box()
    assert box is not None
    column = canvas.bounding_box()["width"] / 12  # type: ignore[index]
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 20 + column * 1.2, box["y"] + 20, steps=5)
    page.mouse.up()
    after = canvas.locator(".widget").nth(3).get_attribute("style") or ""
    assert before != after and "--x:" in after, (before, after)
    page.get_by_role("button", name="Save dashboard").click()
    expect(page.locator("#editor")).to_have_attribute("data-saved", "4")
    shot(page, "03-dashboard-editor")


def add_device(page: Page, stack: StackConfig, template_id: str, name: str) -> DeviceOut:
    page.goto(f"{stack.base_url}/devices/new?template={template_id}")
    page.get_by_label("Device name").fill(name)
    page.get_by_role("button", name="Create device").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    page.get_by_role("button", name="Show").click()
    token = page.locator("[data-token]")
    expect(token).to_have_text(re.compile(r"^[A-Za-z0-9_-]{32}$"))
    device_id = int(page.url.split("/devices/")[1].split("?")[0])
    shot(page, "04-device-info")
    return DeviceOut(name=name, id=device_id, token=token.inner_text(), template="", template_id="", created=True)


def test_console_end_to_end(
    stack: StackConfig,
    browser: Browser,  # noqa: F811 (fixture)
    paho_device: ConnectDevice,
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = no_page_errors(page)
    suffix = uuid.uuid4().hex[:6]
    sign_in(page, stack)
    template_id = create_template(page, f"Browser {suffix}")
    design_dashboard(page)
    info = add_device(page, stack, template_id, f"Browser device {suffix}")

    page.goto(f"{stack.base_url}/devices/{info.id}")
    dashboard = page.locator("#dashboard")
    expect(dashboard).to_have_attribute("data-live", "connected")
    device = paho_device(stack, info)
    expect(page.locator(f'[data-presence="{info.id}"]').first).to_have_text("Online")
    device.publish("ds/Temperature", "23.4")
    value = page.locator(".widget-value output")
    expect(value).to_have_text("23.4")
    device.publish("ds/Temperature/prop/label", "Kitchen temperature")
    expect(page.locator(".widget-value .widget-title")).to_have_text("Kitchen temperature")

    switch = page.get_by_role("switch")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Power", b"1")
    power = page.locator(".widget-switch")
    expect(power).to_have_attribute("data-state", "waiting")
    expect(power.locator(".widget-status")).to_have_text("waiting for device…")
    shot(page, "05-device-dashboard-waiting")
    device.publish("ds/Power", "1")  # the device confirms
    expect(power).to_have_attribute("data-state", "confirmed")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(power.locator(".widget-status")).to_have_text("")

    now = datetime.now(UTC)
    points = [[int((now - timedelta(minutes=m)).timestamp() * 1000), 20 + (m % 7)] for m in range(1, 300)]
    r = httpx.post(
        f"{stack.base_url}/external/api/batch/update",
        params={"token": info.token, "pin": "V0"},
        json=points,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    page.reload()
    chart = page.locator(".widget-chart")
    chart.get_by_role("button", name="6h").click()
    page.wait_for_function(  # the 6 h range is drawn (not the default day, answered late)
        "el => el.dataset.chartEnd - el.dataset.chartStart === 6 * 3600e3", arg=chart.element_handle()
    )
    expect(chart).to_have_attribute("data-chart-points", re.compile(r"^[1-9]\d*$"))
    start, end = int(chart.get_attribute("data-chart-start") or 0), int(chart.get_attribute("data-chart-end") or 0)
    plot = chart.locator(".u-over")
    box = plot.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    expect(chart).to_have_attribute("data-chart-zoomed", "yes")
    zoom_start, zoom_end = (
        int(chart.get_attribute("data-chart-start") or 0),
        int(chart.get_attribute("data-chart-end") or 0),
    )
    assert start < zoom_start < zoom_end < end and (zoom_end - zoom_start) < (end - start) / 2
    expect(chart.get_by_role("button", name="Reset zoom")).to_be_visible()
    device.publish("ds/Where", "24.1052,56.9496")
    expect(page.locator(".widget-map .coords")).to_have_text("lat 56.94960, lon 24.10520")
    expect(page.get_by_text("there are no map tiles")).to_be_visible()  # said where a map is shown
    shot(page, "06-device-dashboard")

    phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=context.storage_state())
    phone.set_default_timeout(TIMEOUT_MS)
    small = phone.new_page()
    small.goto(f"{stack.base_url}/devices/{info.id}")
    expect(small.locator(".widget-value output")).to_have_text("23.4")
    widths = small.evaluate("[...document.querySelectorAll('.widget')].map(w => w.getBoundingClientRect().width)")
    assert min(widths) > 300, widths  # stacked one per row on a phone
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(small, "07-phone-dashboard")
    small.get_by_role("button", name="Menu").click()
    expect(small.get_by_role("link", name="Templates")).to_be_visible()
    phone.close()
    device.close()

    page.goto(f"{stack.base_url}/devices")
    row = page.locator(f'tr[data-device="{info.id}"]')
    expect(row.locator("[data-presence]")).to_have_text("Offline", timeout=TIMEOUT_MS)  # a loaded CI run
    page.get_by_label("Search devices").fill(f"device {suffix}")
    expect(page.locator("#device-rows tr")).to_have_count(1)
    page.get_by_label("Search devices").fill(f"nothing-{suffix}")
    expect(page.locator("#device-rows")).to_contain_text("No devices match")
    page.get_by_label("Search devices").fill(suffix)
    expect(page.locator("#device-rows tr")).to_have_count(1)
    shot(page, "08-devices")
    page.goto(f"{stack.base_url}/devices/{info.id}?tab=timeline")
    expect(page.locator("ol.timeline")).to_contain_text("Online")
    shot(page, "09-device-timeline")
    page.goto(f"{stack.base_url}/devices/{info.id}?tab=info")
    page.get_by_label("Tags").fill(f"Floor 2\n  Zone {suffix} \n\nFloor 2")  # one a line, trimmed, once each
    page.get_by_role("button", name="Save tags").click()
    expect(page.locator("#tags .badge")).to_have_text(["Floor 2", f"Zone {suffix}"])
    page.get_by_label("Tags").fill("x" * 65)
    page.get_by_role("button", name="Save tags").click()
    expect(page.locator("#tags .form-error")).to_contain_text("a tag has at most 64")
    for path, name in (("/users", "10-users"), ("/roles", "11-roles"), ("/orgs", "12-orgs")):
        page.goto(stack.base_url + path)
        expect(page.locator("h1")).to_be_visible()
        shot(page, name)
    context.close()
    assert errors == []
