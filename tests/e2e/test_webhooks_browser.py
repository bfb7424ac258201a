"""The webhook pages in a real Chromium: a webhook made in the editor (template datastream
trigger, JSON body), "send test" delivering to a local receiver that checks the signature, the
outcome and the delivery log on the page, and a refused address explained. Screenshots go to
``.pytest-artifacts/console/webhooks-*.png``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.console_browser import browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN, AccountsStack, start_accounts_stack
from tests.support.webhook_receiver import Receiver, receiving

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim


@pytest.fixture(scope="module")
def hooked(pg_server: str, template_db: str) -> Iterator[tuple[AccountsStack, Receiver, str]]:
    with receiving() as receiver:
        for acc in start_accounts_stack(pg_server, template_db, "hookui", webhook_allowed_hosts="127.0.0.1"):
            with acc.login(*ROOT_ADMIN) as api:  # Playwright's loop runs in this thread: no asyncio.run here
                r = api.post("/api/console/templates", json={"name": "Greenhouse"})
                assert r.status_code == 201, r.text
                r = api.post(
                    f"/api/console/templates/{r.json()['id']}/datastreams",
                    json={"pin": "V0", "name": "Temperature", "type": "double", "min": -40, "max": 85},
                )
                assert r.status_code == 200, r.text
            yield acc, receiver, "Greenhouse"


@pytest.fixture
def page(browser: Browser, hooked: tuple[AccountsStack, Receiver, str]) -> Iterator[Page]:  # noqa: F811 (fixture)
    acc = hooked[0]
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    opened.goto(f"{acc.base_url}/login")
    opened.get_by_label("E-mail").fill(ROOT_ADMIN[0])
    opened.get_by_label("Password").fill(ROOT_ADMIN[1])
    opened.get_by_role("button", name="Sign in").click()
    expect(opened).to_have_url(re.compile(r"/devices$"))
    yield opened
    context.close()


def test_a_webhook_is_made_in_the_editor_and_its_test_is_delivered_signed(
    page: Page, hooked: tuple[AccountsStack, Receiver, str]
) -> None:
    acc, receiver, template = hooked
    errors = no_page_errors(page)
    page.goto(f"{acc.base_url}/webhooks")
    expect(page.locator("#webhook-rows")).to_contain_text("No webhooks yet.")
    page.get_by_role("link", name="+ New webhook").click()
    expect(page).to_have_url(re.compile(r"/webhooks/new$"))
    page.get_by_label("Name", exact=True).fill("Farm log")
    page.locator("select[name=trigger]").select_option(label="Template datastream update")
    page.locator("select[name=template_id]").select_option(label=template)
    page.locator("select[name=pin]").select_option(label="Temperature (V0)")
    expect(page.locator("select[name=device_id]")).to_be_hidden()
    page.get_by_label("URL", exact=True).fill(receiver.url("/browser"))
    page.locator("textarea[name=headers]").fill("X-Farm: north")
    page.locator("textarea[name=body]").fill('{"device": "{DEVICE_NAME}", "value": "{TRIGGER_VALUE}"}')
    shot(page, "webhooks-editor")
    page.get_by_role("button", name="Create webhook").click()
    expect(page).to_have_url(re.compile(r"/webhooks/\d+$"))
    expect(page.locator("h1")).to_have_text("Farm log")
    expect(page.locator("select[name=pin]")).to_have_value("0")
    secret = page.locator("#webhook-secret").inner_text()
    assert secret.startswith("whsec_")

    page.get_by_role("button", name="Send test").click()
    expect(page.locator("[data-test-outcome]")).to_have_attribute("data-test-outcome", "ok")
    expect(page.locator("#webhook-test-result")).to_contain_text("Delivered: 200")
    expect(page.locator("[data-test-response]")).to_have_text("thanks")
    expect(page.locator("[data-test-error]")).to_have_count(0)
    expect(page.locator("#webhook-test-result")).not_to_contain_text("null")
    [request] = [r for r in receiver.requests if r.path == "/browser"]
    assert json.loads(request.body) == {"device": "Sample device", "value": "23.5"}
    assert request.headers["x-farm"] == "north"
    assert receiver.verified(request, secret)
    shot(page, "webhooks-test-sent")

    page.reload()
    expect(page.locator("#webhook-deliveries tbody tr")).to_have_count(1)
    expect(page.locator("#webhook-deliveries")).to_contain_text(f"test by {ROOT_ADMIN[0]}")
    page.get_by_label("URL", exact=True).fill("http://169.254.169.254/latest/meta-data/")
    with page.expect_navigation():  # saved, the page reloads
        page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("URL", exact=True)).to_have_value("http://169.254.169.254/latest/meta-data/")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("[data-test-outcome]")).to_have_attribute("data-test-outcome", "failed")
    expect(page.locator("[data-test-error]")).to_contain_text("a link-local address")
    shot(page, "webhooks-test-refused")

    page.goto(f"{acc.base_url}/webhooks")
    expect(page.locator("#webhook-rows")).to_contain_text("Farm log")
    expect(page.locator("#webhook-rows")).to_contain_text("Template datastream update")
    shot(page, "webhooks-list")
    assert errors == []
