"""The README's quick start ends on a live dashboard: ``examples/thermostat.json`` imported,
``examples/thermostat_device.py`` running as a real process, and the Kitchen device's page in
Chromium showing every widget fed (gauge, value, switch, chart, terminal).

The screenshot is saved as ``.pytest-artifacts/console/quickstart-dashboard.png``; with
``OPENBLYNK_README_SCREENSHOT=1`` it is also written to ``docs/quickstart-dashboard.png``, the
picture the README shows (regenerate it that way when the console's look changes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.console_browser import ARTIFACTS, browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN
from tests.support.net import wait_for
from tests.support.provision import provision
from tests.support.stack import StackConfig

ROOT = Path(__file__).resolve().parents[2]
README_SHOT = ROOT / "docs" / "quickstart-dashboard.png"
TIMEOUT_MS = 20_000


@pytest.fixture
def kitchen(stack: StackConfig) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """The example imported, and the example device running against the stack with its token."""
    doc = json.loads((ROOT / "examples" / "thermostat.json").read_bytes())
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        result = pool.submit(provision, stack.database_url, doc).result()
    info = result.devices[0]
    device = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "thermostat_device.py"),
            info.token,
            "127.0.0.1",
            str(stack.mqtt_port),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield info.id, device
    finally:
        device.terminate()
        device.wait(10)


def test_the_quick_start_ends_on_a_live_dashboard(
    stack: StackConfig,
    browser: Browser,  # noqa: F811 (fixture)
    kitchen: tuple[int, subprocess.Popen[str]],
) -> None:
    device_id, device = kitchen
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = no_page_errors(page)
    page.goto(f"{stack.base_url}/login?next=/devices/{device_id}")
    page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
    page.get_by_label("Password").fill(ROOT_ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Kitchen")).to_be_visible()
    expect(page.locator("#dashboard")).to_have_attribute("data-live", "connected")
    expect(page.locator(f'[data-presence="{device_id}"]').first).to_have_text("Online")

    expect(page.locator(".widget-gauge .gv")).to_have_text(re.compile(r"^\d+\.\d °C$"))
    expect(page.locator(".widget-value output")).to_have_text(re.compile(r"^\d+ %$"))
    terminal = page.locator(".widget-terminal")
    expect(terminal.locator(".term-out")).to_contain_text("thermostat 1.0.0 online")
    switch = page.get_by_role("switch")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()  # the device hears it, confirms it and says so on the terminal
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(terminal.locator(".term-out")).to_contain_text("heating on")
    terminal.get_by_label("Send to device").fill("status")
    terminal.get_by_role("button", name="Send").click()
    expect(terminal.locator(".term-out")).to_contain_text(re.compile(r"°C, \d+ % humidity, heating on"))
    history = f"{stack.base_url}/api/console/devices/{device_id}/history?pin=0&start={{}}&end={{}}&points=100"
    wait_for(
        lambda: len(page.request.get(history.format(*_last_minutes(15))).json()["t"]) >= 3,
        timeout=30,
        message="three temperatures in the history",
    )
    chart = page.locator(".widget-chart")
    chart.get_by_role("button", name="live").click()
    expect(chart).to_have_attribute("data-chart-points", re.compile(r"^([3-9]|\d{2,})$"))  # a line, not a dot
    expect(page.get_by_text("there are no map tiles")).to_have_count(0)  # no map widget, no word about tiles

    shot(page, "quickstart-dashboard")
    if os.environ.get("OPENBLYNK_README_SCREENSHOT") == "1":
        shutil.copyfile(ARTIFACTS / "quickstart-dashboard.png", README_SHOT)
    context.close()
    assert errors == []
    device.terminate()
    output = device.communicate(timeout=10)[0]
    assert "Power set to 1" in output, output


def _last_minutes(minutes: int) -> tuple[int, int]:
    end = int(time.time() * 1000)
    return end - minutes * 60_000, end
