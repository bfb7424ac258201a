"""The console in Chromium over HTTPS (issue #18 item 4): sign in on ``https://``, the session
cookie marked ``Secure``, and the device page's live WebSocket over ``wss://`` showing a device
come online and its value, published by a paho device over ``wss://…/mqtt``.

Chromium trusts exactly the server's key (``--ignore-certificate-errors-spki-list`` with the
SHA-256 of the served certificate's public key: a pin, where a headless profile cannot be given
the CA); any other certificate is still refused. That the certificate verifies against the
served CA is what tests/integration/backend/test_https.py checks with httpx and paho.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, expect, sync_playwright

from backend.transfer.schemas import DeviceOut
from tests.e2e.console_browser import CHROMIUM, CHROMIUM_ARGS, no_page_errors, shot
from tests.support.accounts import ROOT_ADMIN
from tests.support.paho import ConnectDevice
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def info(stack: StackConfig) -> DeviceOut:
    """A device to watch, made before the browser starts (Playwright's sync API runs an event
    loop in this thread, and provisioning runs its own)."""
    return provision(stack.database_url, thermostat_doc()).devices[0]


def spki_pin(certfile: Path) -> str:
    """Chromium's pin of a certificate: base64 of the SHA-256 of its SubjectPublicKeyInfo."""
    key = x509.load_pem_x509_certificate(certfile.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def pinned_browser(stack: StackConfig, info: DeviceOut) -> Iterator[Browser]:
    """Chromium trusting the stack's server key only (started after ``info`` is made)."""
    del info
    pin = spki_pin(stack.data_dir / "tls" / "server.pem")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"]
        )
        yield browser
        browser.close()


def test_console_over_https_with_live_updates(
    stack: StackConfig,
    info: DeviceOut,
    pinned_browser: Browser,
    paho_device: ConnectDevice,
) -> None:
    context = pinned_browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = no_page_errors(page)
    page.goto(f"{stack.https_url}/devices/{info.id}")
    expect(page).to_have_url(f"{stack.https_url}/login?next=%2Fdevices%2F{info.id}")
    page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
    page.get_by_label("Password").fill(ROOT_ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.https_url}/devices/{info.id}")
    session = [c for c in context.cookies() if c["httpOnly"]]
    assert session and all(c["secure"] for c in session), context.cookies()

    page.goto(f"{stack.https_url}/devices/{info.id}?tab=datastreams")
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    presence = page.locator(f'[data-presence="{info.id}"]').first
    expect(presence).to_have_text("Offline")
    device = paho_device(stack, info, transport="wss")
    expect(presence).to_have_text("Online")
    assert page.evaluate("window.location.protocol") == "https:"
    device.publish("ds/Temperature", "23.5")
    expect(page.locator('[data-value-pin="0"]').first).to_have_text("23.5")
    shot(page, "https-device")
    assert errors == []
    context.close()
