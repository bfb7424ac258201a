"""Blynk.Inject in a real browser (Chromium through Playwright) against the real broker and app:
the manufacturer generates static tokens for the thermostat template on the console's Static
tokens page and exports them; the README's example device runs with one (a real process, as if
flashed at the factory) and appears unclaimed; a customer of another organization opens the
claim link of its label, names it and claims it, and finds it online on their device page.

A second test walks a user through adding a device over Wi-Fi: the console gives the token and
the command, which hands it to the device library in provisioning mode on loopback.

Screenshots: ``.pytest-artifacts/console/inject-*.png``; with ``OPENBLYNK_README_SCREENSHOT=1``
the claim page and the claimed device are also written to ``docs/`` for the README."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from device_sdk import Device, ProvisioningServer, WifiNetwork
from tests.e2e.console_browser import ARTIFACTS, browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN, USER, AccountsStack, invite_and_join, start_accounts_stack
from tests.support.net import wait_for
from tests.support.provision import provision

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def acc(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    yield from start_accounts_stack(pg_server, template_db, "injectweb")


def _sign_in(page: Page, acc: AccountsStack, email: str, password: str, then: str) -> None:
    page.goto(f"{acc.base_url}/login?next={then}")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _readme_shot(name: str) -> None:
    if os.environ.get("OPENBLYNK_README_SCREENSHOT") == "1":
        shutil.copyfile(ARTIFACTS / f"{name}.png", ROOT / "docs" / f"{name}.png")


def test_a_customer_claims_a_factory_flashed_device_in_the_console(
    acc: AccountsStack,
    browser: Browser,  # noqa: F811 (fixture)
) -> None:
    doc = json.loads((ROOT / "examples" / "thermostat.json").read_bytes())
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        pool.submit(provision, acc.config.database_url, doc).result()
    with acc.db() as db:
        row = db.execute("SELECT id, org_id FROM template WHERE name = 'Thermostat'").fetchone()
    assert row is not None
    template_id, maker_org = row
    root = acc.login(*ROOT_ADMIN)
    home = root.post("/api/orgs", json={"name": "Home"}).json()["id"]
    invite_and_join(acc, root, home, "customer@example.com", USER, password="a-good-password-1").close()

    # the manufacturer makes three static tokens on the console and downloads the CSV
    maker = browser.new_context(viewport={"width": 1280, "height": 900})
    maker.set_default_timeout(TIMEOUT_MS)
    page = maker.new_page()
    errors = no_page_errors(page)
    _sign_in(page, acc, *ROOT_ADMIN, then="/static-tokens")
    expect(page.get_by_role("heading", name="Static tokens", exact=True)).to_be_visible()
    form = page.locator("form[data-inject-generate]")
    form.get_by_label("Template").select_option(label="Thermostat")
    form.get_by_label("How many").fill("3")
    form.get_by_role("button", name="Generate tokens").click()
    expect(page.locator("table[data-static-tokens] tbody tr")).to_have_count(3)
    expect(page.locator("table[data-static-tokens]")).to_contain_text("UNCLAIMED")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV with tokens and codes").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == 3
    with page.expect_download() as labels:
        page.get_by_role("link", name="QR labels (SVG, A4 3 × 8)").click()
    sheet = Path(labels.value.path()).read_text()
    assert sheet.startswith("<svg") and sheet.count('class="segno"') == 3
    first = rows[0]

    # flashed with the first token, the example device runs: the manufacturer's, unclaimed
    device = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "thermostat_device.py"),
            first["auth_token"],
            "127.0.0.1",
            str(acc.config.mqtt_port),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def online() -> tuple[int, int] | None:
            with acc.db() as db:
                found = db.execute(
                    "SELECT d.id, d.org_id FROM device d JOIN static_token s ON s.device_id = d.id "
                    "WHERE s.id = %s AND d.online",
                    (int(first["id"]),),
                ).fetchone()
            return None if found is None else (int(found[0]), int(found[1]))

        seen = wait_for(online, timeout=30, message="the flashed device online")
        assert seen is not None
        device_id, org = seen
        assert org == maker_org
        page.reload()
        expect(page.locator(f'tr[data-token-id="{first["id"]}"]')).to_contain_text(f"#{device_id}")
        shot(page, "inject-static-tokens")

        # the customer opens the label's claim link, names the device and claims it
        customer = browser.new_context(viewport={"width": 1280, "height": 800})
        customer.set_default_timeout(TIMEOUT_MS)
        mine = customer.new_page()
        errors += no_page_errors(mine)
        _sign_in(mine, acc, "customer@example.com", "a-good-password-1", then=f"/claim?code={first['claim_code']}")
        expect(mine.get_by_label("Claim code")).to_have_value(first["claim_code"])
        mine.locator("form[data-claim-form]").get_by_label("Device name (optional)").fill("Living room")
        shot(mine, "inject-claim")
        _readme_shot("inject-claim")
        mine.get_by_role("button", name="Claim device").click()
        expect(mine).to_have_url(f"{acc.base_url}/devices/{device_id}?tab=info")
        expect(mine.get_by_role("heading", name="Living room")).to_be_visible()
        mine.goto(f"{acc.base_url}/devices/{device_id}")
        expect(mine.locator(f'[data-presence="{device_id}"]').first).to_have_text("Online", timeout=TIMEOUT_MS)
        expect(mine.locator(".widget-gauge .gv")).to_have_text(re.compile(r"^\d+\.\d °C$"))  # live in Home
        shot(mine, "inject-claimed")
        _readme_shot("inject-claimed")
        with acc.db() as db:
            claimed = db.execute("SELECT org_id, owner_id FROM device WHERE id = %s", (device_id,)).fetchone()
            me = db.execute("SELECT id FROM app_user WHERE email = 'customer@example.com'").fetchone()
        assert me is not None and claimed == (home, me[0])
        mine.goto(f"{acc.base_url}/claim")
        expect(mine.locator("table[data-claimed]")).to_contain_text("Living room")
        customer.close()
    finally:
        device.terminate()
        device.communicate(timeout=10)  # closes its output pipe
        maker.close()
        root.close()
    assert errors == []


def test_the_console_walks_a_user_through_wi_fi_provisioning(
    acc: AccountsStack,
    browser: Browser,  # noqa: F811 (fixture)
) -> None:
    with acc.db() as db:
        row = db.execute("SELECT id, public_id FROM template WHERE name = 'Thermostat'").fetchone()
    if row is None:  # this module's first test imports it; alone, this test does
        doc = json.loads((ROOT / "examples" / "thermostat.json").read_bytes())
        with ThreadPoolExecutor(1) as pool:
            pool.submit(provision, acc.config.database_url, doc).result()
        with acc.db() as db:
            row = db.execute("SELECT id, public_id FROM template WHERE name = 'Thermostat'").fetchone()
    assert row is not None
    public_id = str(row[1])
    root = acc.login(*ROOT_ADMIN)
    flat = root.post("/api/orgs", json={"name": "Flat"}).json()["id"]
    invite_and_join(acc, root, flat, "tenant@example.com", USER, password="a-good-password-1").close()
    root.close()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = no_page_errors(page)
    _sign_in(page, acc, "tenant@example.com", "a-good-password-1", then="/provision")
    form = page.locator("form[data-provision]")
    form.get_by_label("Template").select_option(label="Thermostat")
    form.get_by_label("Device name").fill("Bedroom")
    form.get_by_role("button", name="Get a provisioning token").click()
    steps = page.locator("#provision-steps")
    expect(steps).to_be_visible()
    token = page.locator("[data-provision-token]").inner_text()
    assert len(token) == 32
    expect(page.locator("[data-provision-command]")).to_contain_text(f"openblynk provision --token={token}")
    shot(page, "inject-provision")

    # the device in provisioning mode; the command the page shows, run from this computer
    server = ProvisioningServer(_NoWifi(), template_id=public_id, firmware_version="1.0.0", host="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.address
        cli = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from backend.cli import main; sys.exit(main())",
                "provision",
                "--device",
                f"http://{host}:{port}",
                f"--token={token}",  # as the console shows it: a token may start with "-"
                "--ssid",
                "Flat",
                "--server",
                "127.0.0.1",
            ],
            cwd=ROOT,
            env=acc.config.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        config = server.wait(10)
    finally:
        server.stop()
    with Device(config.token, config.host, config.port, template_id=public_id, keepalive=30):
        page.goto(f"{acc.base_url}/devices")
        expect(page.locator("#device-rows")).to_contain_text("Bedroom")
        expect(page.locator("#device-rows [data-presence]").first).to_have_text("Online", timeout=TIMEOUT_MS)
    context.close()
    assert errors == []


class _NoWifi:
    """The device's Wi-Fi in a test: nothing in range, joining is a no-op."""

    def scan(self) -> list[WifiNetwork]:
        return []

    def join(self, ssid: str, password: str) -> None:
        return None
