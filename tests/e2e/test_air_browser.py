"""Blynk.Air and the console's device leftovers in a real browser (Chromium through Playwright)
against the real broker and app: upload a firmware image with a ``blnkinf`` info tag and see it
parsed, hashed and signed; ship it to a paho device and watch the shipment page follow the
device (Request sent, Firmware Downloaded, Success, Finished) without reloading; pause, resume,
cancel and delete a shipment; a switch-mode button, a terminal that opens with its backlog, and
a metadata edit that reaches the device. Screenshots go to ``.pytest-artifacts/console/``."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.e2e.console_browser import browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.integration.console.test_console_api import make_device, make_template
from tests.integration.ota.ota_support import FW_TYPE, image
from tests.support.accounts import ROOT_ADMIN, Api
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.stack import StackConfig

TIMEOUT_MS = 30_000  # a bound, not a timing claim: the scheduler offers firmware on its next round


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """expect() waits up to TIMEOUT_MS here (Playwright's default is 5 s) and 5 s again after."""
    expect.set_options(timeout=TIMEOUT_MS)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture
def api(stack: StackConfig) -> Iterator[Api]:
    with Api(stack.base_url) as client:
        client.login(*ROOT_ADMIN)
        yield client


@pytest.fixture
def context(browser: Browser, stack: StackConfig) -> Iterator[BrowserContext]:  # noqa: F811 (fixture)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    page.goto(f"{stack.base_url}/login")
    page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
    page.get_by_label("Password").fill(ROOT_ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/devices$"))
    page.close()
    yield ctx
    ctx.close()


def test_firmware_upload_and_a_shipment_followed_live(
    stack: StackConfig, api: Api, context: BrowserContext, paho_device: ConnectDevice
) -> None:
    suffix = uuid.uuid4().hex[:6]
    info = make_device(api, make_template(api)["id"])
    idle = make_device(api, make_template(api)["id"])  # never connects: its shipment waits
    data = image("2.0.0")
    page = context.new_page()
    errors = no_page_errors(page)
    page.goto(f"{stack.base_url}/devices")
    page.get_by_role("link", name="Blynk.Air").click()
    expect(page).to_have_url(f"{stack.base_url}/air/shipments")
    page.get_by_role("link", name="Firmware", exact=True).click()
    page.get_by_label(re.compile(r"^Image")).set_input_files(
        {"name": f"thermo-{suffix}.bin", "mimeType": "application/octet-stream", "buffer": data}
    )
    page.get_by_role("button", name="Upload").click()
    result = page.locator("#upload-result")
    expect(result).to_be_visible()
    expect(result.locator('[data-f="version"]')).to_have_text("2.0.0")
    expect(result.locator('[data-f="fw_type"]')).to_have_text(FW_TYPE)
    expect(result.locator('[data-f="build"]')).to_have_text("Mar 05 2024 18:29:27")
    expect(result.locator('[data-f="sha256"]')).to_have_text(hashlib.sha256(data).hexdigest())
    expect(result.locator('[data-f="md5"]')).to_have_text(hashlib.md5(data).hexdigest())
    expect(result.locator('[data-f="size"]')).to_have_text(f"{len(data):,} bytes")
    expect(result.locator('[data-f="signature"]')).to_have_text(re.compile(r"^[A-Za-z0-9+/]{86}==$"))
    expect(page.locator("#firmware-rows")).to_contain_text(f"thermo-{suffix}.bin")  # the list caught up by htmx
    shot(page, "20-air-firmware")
    firmware_id = int(result.get_attribute("data-firmware") or 0)
    r = api.post(
        "/api/ota/shipments",
        json={
            "name": f"Idle {suffix}",
            "firmware_id": firmware_id,
            "target": {"kind": "devices", "device_ids": [idle.id]},
        },
    )
    assert r.status_code == 201, r.text
    idle_shipment = r.json()["id"]

    dev = paho_device(stack, info)
    dev.publish("info/mcu", json.dumps({"ver": "1.0.0", "type": FW_TYPE}), qos=1)
    result.get_by_role("link", name="Ship this firmware").click()
    form = page.locator("#shipment-form")
    expect(form.locator("select[name=firmware_id]")).to_have_value(str(firmware_id))
    form.get_by_label("Shipment name").fill(f"Idle {suffix}")  # taken: the server says so
    form.get_by_label("Filter devices").fill(info.name.lower())
    form.get_by_label(info.name).check()
    form.get_by_role("button", name="Start shipment").click()
    expect(form.locator(".form-error")).to_have_text(f"a shipment named 'Idle {suffix}' exists already")
    form.get_by_label("Shipment name").fill(f"Thermo {suffix}")
    form.get_by_role("spinbutton", name="Devices a minute").fill("60")
    form.get_by_label("Stop the shipment when too many devices fail").check()
    form.get_by_label("Failures (%)").fill("50")
    shot(page, "21-air-new-shipment")
    form.get_by_role("button", name="Start shipment").click()
    expect(page).to_have_url(re.compile(r"/air/shipments/\d+$"))
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

    row = page.locator(f'#shipment-devices tr[data-device="{info.id}"]')
    expect(row).to_have_attribute("data-status", "request_sent")
    expect(page.locator('[data-count="request_sent"] .n')).to_have_text("1")
    _, raw = dev.next(timeout=30, topic_prefix="downlink/ota/json")
    offer = json.loads(raw)
    body = httpx.get(offer["url"], timeout=30)
    assert body.status_code == 200 and body.content == data
    expect(row).to_have_attribute("data-status", "downloaded")
    expect(row).to_contain_text("Firmware Downloaded")
    expect(row).to_contain_text("100 %")
    shot(page, "22-air-shipment-downloaded")
    dev.publish("info/mcu", json.dumps({"ver": "2.0.0", "type": FW_TYPE}), qos=1)
    expect(row).to_have_attribute("data-status", "success")
    expect(page.locator('[data-count="success"] .n')).to_have_text("1")
    expect(page.locator("[data-shipment-state]")).to_have_text("Finished")
    assert page.evaluate("window.__sameDocument === true")
    shot(page, "23-air-shipment-finished")
    dev.close()

    page.goto(f"{stack.base_url}/air/shipments/{idle_shipment}")
    state = page.locator("[data-shipment-state]")
    page.get_by_role("button", name="Pause").click()
    expect(state).to_have_text("Paused")
    page.get_by_role("button", name="Resume").click()
    expect(state).to_have_text("Live")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Cancel shipment").click()
    expect(state).to_have_text("Cancelled")
    page.goto(f"{stack.base_url}/air/shipments")
    expect(page.locator("table.list")).to_contain_text(f"Thermo {suffix}")
    shot(page, "24-air-shipments")
    page.get_by_role("link", name=f"Idle {suffix}").click()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete shipment").click()
    expect(page).to_have_url(f"{stack.base_url}/air/shipments")
    expect(page.locator("table.list")).not_to_contain_text(f"Idle {suffix}")
    page.goto(f"{stack.base_url}/air/firmware")
    page.once("dialog", lambda d: d.accept())
    page.locator(f'tr[data-firmware="{firmware_id}"]').get_by_role("button", name="Delete").click()
    expect(page.locator("#toast")).to_have_text("this firmware is used by a shipment; delete the shipment first")
    assert errors == []


def test_switch_button_terminal_backlog_and_metadata(
    stack: StackConfig, api: Api, context: BrowserContext, paho_device: ConnectDevice
) -> None:
    template = make_template(
        api,
        [
            {"pin": "V1", "name": "Power", "type": "integer", "min": 0, "max": 1},
            {"pin": "V5", "name": "Log", "type": "string", "save_raw": True},
        ],
    )
    tid = template["id"]
    assert (
        api.post(f"/api/console/templates/{tid}/metadata", json={"name": "Serial", "type": "text"}).status_code == 200
    )
    widgets = [
        {"id": "b", "type": "button", "pin": 1, "x": 0, "y": 0, "w": 3, "h": 2, "mode": "switch"},
        {"id": "t", "type": "terminal", "pin": 5, "x": 3, "y": 0, "w": 6, "h": 4},
    ]
    assert api.put(f"/api/console/templates/{tid}/dashboard", json={"widgets": widgets}).status_code == 200
    info = make_device(api, tid)
    page = context.new_page()
    errors = no_page_errors(page)
    dev = paho_device(stack, info)
    for n in range(3):
        dev.publish("ds/Log", f"boot {n}", qos=1)
    _wait_history(api, info.id, "boot 2")
    page.goto(f"{stack.base_url}/devices/{info.id}")
    terminal = page.locator(".widget-terminal")
    expect(terminal).to_have_attribute("data-backlog", "loaded")
    expect(terminal.locator("pre > div")).to_have_text(["boot 0", "boot 1", "boot 2"])
    expect(page.locator("#dashboard")).to_have_attribute("data-live", "connected")
    dev.publish("ds/Log", "live line", qos=1)
    expect(terminal.locator("pre > div")).to_have_text(["boot 0", "boot 1", "boot 2", "live line"])

    button = page.locator(".widget-button button")
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    assert dev.next(topic_prefix="downlink/ds/") == ("downlink/ds/Power", b"1")
    expect(button).to_have_attribute("aria-pressed", "true")
    button.click()
    assert dev.next(topic_prefix="downlink/ds/") == ("downlink/ds/Power", b"0")
    expect(button).to_have_attribute("aria-pressed", "false")
    shot(page, "25-device-switch-button-terminal")

    page.goto(f"{stack.base_url}/devices/{info.id}?tab=info")
    serial = page.locator("#metadata form").filter(has=page.locator('input[value="Serial"]'))
    serial.get_by_label("Serial").fill("SN-7")
    serial.get_by_role("button", name="Save").click()
    assert dev.next(topic_prefix="downlink/meta/") == ("downlink/meta/Serial", b"SN-7")
    expect(page.locator("#toast")).to_have_text("Saved")
    shot(page, "26-device-metadata")
    dev.close()
    assert errors == []


def _wait_history(api: Api, device_id: int, last: str) -> None:
    """Until the backlog route has ``last`` stored (the lines are committed history, not only the latest value)."""

    def stored() -> bool:
        lines = api.get(f"/api/console/devices/{device_id}/lines", params={"pin": 5}).json()["lines"]
        return len(lines) == 3 and lines[-1]["value"] == last

    wait_for(stored, 15, message="the log lines in history")
