"""Settings -> Developers -> MQTT sessions in a real Chromium (issue #14 item 7): a gateway
connected through an OAuth client shows in the list with its credentials, MQTT client id,
address, devices and traffic; "Disconnect" (confirmed) ends that connection and the row goes.
Screenshot: ``.pytest-artifacts/console/mqtt-sessions.png``."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, Dialog, expect

from tests.e2e.console_browser import browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN, Api
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim


def test_a_connected_gateway_is_listed_and_disconnected_from_the_console(
    browser: Browser,  # noqa: F811 (fixture)
    stack: StackConfig,
    admin: Api,
) -> None:
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        [device] = pool.submit(provision, stack.database_url, thermostat_doc()).result().devices
    name = f"Site bridge {uuid.uuid4().hex[:6]}"
    made = admin.post("/api/oauth2/clients", json={"name": name})
    assert made.status_code == 201, made.text
    client_id = f"site-{uuid.uuid4().hex[:6]}"
    events: list[str] = []
    gateway = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, reconnect_on_failure=False)
    gateway.username_pw_set(made.json()["client"]["client_id"], made.json()["client_secret"])
    gateway.on_connect = lambda _c, _u, _f, reason, _p=None: events.append(f"connack {reason}")
    gateway.on_disconnect = lambda *_args: events.append("disconnected")
    gateway.connect("127.0.0.1", stack.mqtt_port)
    gateway.loop_start()
    try:
        wait_for(lambda: "connack Success" in events, 10, message="CONNACK")
        gateway.subscribe(f"dev/{device.token}/downlink/#", qos=1)
        gateway.publish(f"dev/{device.token}/ds/Temperature", "21.5", qos=1).wait_for_publish(10)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors = no_page_errors(page)
        page.goto(f"{stack.base_url}/login")
        page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
        page.get_by_label("Password").fill(ROOT_ADMIN[1])
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/devices$"))
        page.get_by_role("link", name="MQTT sessions").click()
        expect(page).to_have_url(re.compile(r"/mqtt-sessions$"))
        row = page.locator("#session-rows tr", has_text=client_id)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(name)
        expect(row).to_contain_text("gateway")
        expect(row).to_contain_text("127.0.0.1:")
        expect(row.locator('[data-cell="devices"]')).to_have_text("1")  # online through it
        expect(row.locator('[data-cell="messages"]')).to_have_text(re.compile(r"^[1-9]\d* / \d+$"))
        expect(row).to_contain_text(" UTC")
        shot(page, "mqtt-sessions")
        asked: list[str] = []

        def confirm(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept()

        page.on("dialog", confirm)
        row.get_by_role("button", name="Disconnect").click()
        wait_for(lambda: "disconnected" in events, 10, message="the gateway disconnected")
        expect(page.locator("#session-rows tr", has_text=client_id)).to_have_count(0)  # the page reloaded
        assert asked == [f"Disconnect {client_id} now? It may connect again with the same credentials."]
        assert errors == []
        context.close()
    finally:
        gateway.disconnect()
        gateway.loop_stop()
