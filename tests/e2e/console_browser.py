"""Playwright driving Debian's Chromium (``/usr/bin/chromium``; Playwright cannot download its
own browsers here) against the real app, and where screenshots go (``.pytest-artifacts/``)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.accounts import ROOT_ADMIN
from tests.support.net import wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".pytest-artifacts" / "console"
CHROMIUM = os.environ.get("OPENBLYNK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
"""Without the networking flags Chromium keeps trying Google's hosts, which this closed network refuses."""
SIZES = {"desktop": {"width": 1280, "height": 1000}, "phone": {"width": 390, "height": 844}}
"""The viewports the console's pages are tested at."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does it)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def readme_view(page: Page, name: str) -> None:
    """With ``OPENBLYNK_README_SCREENSHOT=1``, the visible part of the page (not the full page:
    the console's menu is wider than a 1280 px window) as the README's ``docs/<name>.png``."""
    if os.environ.get("OPENBLYNK_README_SCREENSHOT") == "1":
        page.screenshot(path=str(ROOT / "docs" / f"{name}.png"))


def no_page_errors(page: Page) -> list[str]:
    """Collect uncaught script errors of a page (asserted empty at the end of a test). Failed
    requests are not among them: the tests make some on purpose (a wrong password answers 401)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    return errors


@contextmanager
def signed_in(browser: Browser, base_url: str, size: str, timeout_ms: int, **options: Any) -> Iterator[Page]:
    """A page of a new browser context at ``SIZES[size]`` (and ``options``), signed in as the
    root admin, waiting up to ``timeout_ms`` for anything."""
    context = browser.new_context(viewport=SIZES[size], **options)  # type: ignore[arg-type]
    context.set_default_timeout(timeout_ms)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/login")
        page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
        page.get_by_label("Password").fill(ROOT_ADMIN[1])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/devices$"))
        yield page
    finally:
        context.close()


def wait_online(database_url: str, device_id: int) -> None:
    """Wait until the device is online in the database, so that a page drawn next shows it
    online (a page drawn before may miss the change on a loaded machine)."""
    with psycopg.connect(database_url, autocommit=True) as db:
        sql = "SELECT online FROM device WHERE id = %s"
        wait_for(lambda: db.execute(sql, (device_id,)).fetchone() == (True,), message=f"device {device_id} online")
