"""The template editor's "Enable for Gateway API" switch in a real Chromium (issue #14 item 7):
ticked and saved on the Info tab, it is the template's ``gateway_enabled`` in the API and lets a
device's token log in a gateway as ``mgmt_device``. Screenshot: ``.pytest-artifacts/console/
template-gateway.png``."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, expect

from tests.e2e.console_browser import browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN, Api
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim


def gateway_login(stack: StackConfig, token: str) -> str:
    """The CONNACK reason a ``mgmt_device`` login with ``token`` gets."""
    answers: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="gateway-switch")
    client.username_pw_set("mgmt_device", token)
    client.on_connect = lambda _c, _u, _f, reason, _p=None: answers.append(str(reason))
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    try:
        return wait_for(lambda: answers[0] if answers else "", 10, message="CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_template_editor_switches_the_gateway_api_on(
    browser: Browser,  # noqa: F811 (fixture)
    stack: StackConfig,
    admin: Api,
) -> None:
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        [device] = pool.submit(provision, stack.database_url, thermostat_doc()).result().devices
    template = next(t for t in admin.get("/api/console/templates/").json() if t["name"] == device.template)
    assert template["gateway_enabled"] is False
    assert gateway_login(stack, device.token) == "Bad user name or password"
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = no_page_errors(page)
    page.goto(f"{stack.base_url}/login")
    page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
    page.get_by_label("Password").fill(ROOT_ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/devices$"))
    page.goto(f"{stack.base_url}/templates/{template['id']}")
    switch = page.get_by_label("Enable for Gateway API")
    expect(switch).not_to_be_checked()
    switch.check()
    page.get_by_role("button", name="Save").click()
    wait_for(
        lambda: admin.get(f"/api/console/templates/{template['id']}").json()["gateway_enabled"],
        10,
        message="the switch saved",
    )
    expect(page.get_by_label("Enable for Gateway API")).to_be_checked()  # the page reloads itself after saving
    shot(page, "template-gateway")
    assert gateway_login(stack, device.token) == "Success"
    assert errors == []
    context.close()
