"""Widget properties a device sets (Blynk's ``ds/<name>/prop/<property>``) applied live by the
console's web dashboard and the app's mobile dashboard, in a real Chromium at desktop and phone
size (390x844), against the real broker and app: a paho device sets a label, a colour, on/off
labels, a slider's and gauge's min/max, disabled and hidden, and each page shows them without a
reload. Hostile values: a label holding HTML is shown as its text; a colour that is not one
(``url(...)``, a second declaration) is refused by the server (the device gets a diagnostic) and,
put straight into the database as an older server might have stored it, refused again by the
page (nothing reaches a style). Screenshots ``widget-props-*.png`` under
``.pytest-artifacts/console/``; with ``OPENBLYNK_README_SCREENSHOT=1`` the app's at phone size is
also the README's ``docs/app-widget-properties.png``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from backend.transfer.schemas import DeviceOut
from tests.e2e.console_browser import (  # noqa: F401 (browser: a fixture)
    SIZES,
    browser,
    no_page_errors,
    readme_view,
    shot,
    signed_in,
)
from tests.support.accounts import ROOT_ADMIN, AccountsStack, Api, start_accounts_stack
from tests.support.paho import ConnectDevice, PahoDevice

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim
HTML_LABEL = 'Main <img src=x onerror="document.title=1"> pump'
BAD_COLORS = ("url(https://evil.example/x.png)", "#fff; background-image: url(//evil.example/y)")


@dataclass
class Seeded:
    acc: AccountsStack
    template: int


@pytest.fixture(scope="module")
def seeded(pg_server: str, template_db: str) -> Iterator[Seeded]:
    for acc in start_accounts_stack(pg_server, template_db, "propsui"):
        with acc.login(*ROOT_ADMIN) as api:
            tid = api.post("/api/console/templates", json={"name": "Tank"}).json()["id"]
            for ds in (
                {"pin": "V0", "name": "Pump", "type": "integer", "min": 0, "max": 1},
                {"pin": "V1", "name": "Level", "type": "double", "min": 0, "max": 100},
            ):
                assert api.post(f"/api/console/templates/{tid}/datastreams", json=ds).status_code == 200
            web = [
                {"id": "sw", "type": "switch", "pin": 0, "x": 0, "y": 0, "w": 4, "h": 2},
                {"id": "sl", "type": "slider", "pin": 1, "x": 4, "y": 0, "w": 4, "h": 2},
                {"id": "ga", "type": "gauge", "pin": 1, "x": 8, "y": 0, "w": 4, "h": 2},
            ]
            r = api.put(f"/api/console/templates/{tid}/dashboard", json={"widgets": web})
            assert r.status_code == 200, r.text
            mobile = [
                {"id": "msw", "type": "switch", "pin": 0},
                {"id": "mbt", "type": "button", "pin": 0, "mode": "switch"},
                {"id": "msl", "type": "slider", "pin": 1},
                {"id": "mga", "type": "gauge", "pin": 1},
            ]
            r = api.put(f"/api/console/templates/{tid}/mobile-dashboard", json={"widgets": mobile})
            assert r.status_code == 200, r.text
        yield Seeded(acc, tid)


@pytest.fixture(params=sorted(SIZES))
def sized(request: pytest.FixtureRequest, browser: Browser, seeded: Seeded) -> Iterator[tuple[Page, str]]:  # noqa: F811
    """A signed-in page at one of :data:`SIZES`, and that size's name."""
    with signed_in(browser, seeded.acc.base_url, request.param, TIMEOUT_MS) as page:
        yield page, request.param


def _device(seeded: Seeded, paho_device: ConnectDevice, name: str) -> PahoDevice:
    with seeded.acc.login(*ROOT_ADMIN) as api:
        made = _made(api, name, seeded.template)
    return paho_device(seeded.acc.config, made)


def _made(api: Api, name: str, template: int) -> DeviceOut:
    r = api.post("/api/console/devices", json={"name": name, "template_id": template})
    assert r.status_code == 201, r.text
    return DeviceOut(name=name, id=r.json()["id"], token=r.json()["token"], template="", template_id="", created=True)


def _set(device: PahoDevice, datastream: str, prop: str, value: str) -> None:
    device.publish(f"ds/{datastream}/prop/{prop}", value, qos=1)


def _accent(el: Locator) -> str:
    return str(el.evaluate("e => e.style.getPropertyValue('--accent')"))


def _refused_colors(seeded: Seeded, device: PahoDevice) -> None:
    """The server refuses a colour that is not one (the device is told why); then such values
    are put into the database as if stored earlier, for the page to refuse on its reload."""
    for bad in BAD_COLORS:
        _set(device, "Pump", "color", bad)
        topic, why = device.next(topic_prefix="downlink/diag")
        assert topic == "downlink/diag" and b"must be a colour" in why, why
    with seeded.acc.db() as db:
        row = db.execute(
            "SELECT value FROM device_property WHERE device_id = %s AND property = 'color'", (device.info.id,)
        )
        assert row.fetchone() == ("#D3435C",)
        for name, value in (("color", BAD_COLORS[0]), ("onBackColor", BAD_COLORS[1]), ("offBackColor", BAD_COLORS[1])):
            db.execute(
                "INSERT INTO device_property (device_id, pin, property, value, updated_at) VALUES (%s, 0, %s, %s, now()) "
                "ON CONFLICT (device_id, pin, property) DO UPDATE SET value = EXCLUDED.value",
                (device.info.id, name, value),
            )


def test_the_web_dashboard_applies_properties_live(
    sized: tuple[Page, str], seeded: Seeded, paho_device: ConnectDevice
) -> None:
    page, size = sized
    errors = no_page_errors(page)
    device = _device(seeded, paho_device, f"Web tank {size}")
    page.goto(f"{seeded.acc.base_url}/devices/{device.info.id}")
    dashboard = page.locator("#dashboard")
    expect(dashboard).to_have_attribute("data-loaded", "yes")
    expect(dashboard).to_have_attribute("data-subscribed", "yes")
    switch, slider, gauge = (dashboard.locator(f"section.widget-{kind}") for kind in ("switch", "slider", "gauge"))

    _set(device, "Pump", "label", HTML_LABEL)
    _set(device, "Pump", "color", "#D3435C")
    _set(device, "Pump", "offLabel", "STOPPED")
    _set(device, "Level", "min", "10")
    _set(device, "Level", "max", "50")
    _set(device, "Level", "isDisabled", "true")
    expect(switch.locator(".widget-title")).to_have_text(HTML_LABEL)
    expect(switch.locator(".widget-title img")).to_have_count(0)
    expect(switch.locator(".toggle .label")).to_have_text("STOPPED")
    expect(slider.locator("input[type=range]")).to_have_attribute("max", "50")
    expect(slider.locator("input[type=range]")).to_have_attribute("min", "10")
    expect(slider.locator("input[type=range]")).to_be_disabled()
    expect(gauge.locator("text.gm")).to_have_text(["10", "50"])
    assert _accent(switch) == "#D3435C"
    shot(page, f"widget-props-web-{size}")

    _set(device, "Level", "isHidden", "true")
    expect(slider).to_be_hidden()
    expect(gauge).to_be_hidden()
    device.publish("ds/Level/prop/isHidden/erase", "", qos=1)
    expect(slider).to_be_visible()

    _refused_colors(seeded, device)
    assert _accent(switch) == "#D3435C"  # what the server refused never reached the page
    page.reload()
    expect(dashboard).to_have_attribute("data-loaded", "yes")
    expect(switch.locator(".widget-title")).to_have_text(HTML_LABEL)
    assert _accent(switch) == ""  # a stored non-colour is refused by the page
    assert switch.locator(".toggle").evaluate("e => e.style.background") == ""
    assert page.title() != "1"
    assert errors == []


def test_the_app_dashboard_applies_properties_live(
    sized: tuple[Page, str], seeded: Seeded, paho_device: ConnectDevice
) -> None:
    page, size = sized
    errors = no_page_errors(page)
    device = _device(seeded, paho_device, f"App tank {size}")
    page.goto(f"{seeded.acc.base_url}/app#/devices/{device.info.id}")
    dashboard = page.locator("#mobile-dashboard")
    expect(dashboard.locator("section.mw")).to_have_count(4)
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    switch, button, slider, gauge = (
        dashboard.locator(f'section[data-widget="{i}"]') for i in ("msw", "mbt", "msl", "mga")
    )

    _set(device, "Pump", "label", HTML_LABEL)
    _set(device, "Pump", "color", "#D3435C")
    _set(device, "Pump", "onLabel", "RUNNING")
    _set(device, "Pump", "offLabel", "STOPPED")
    _set(device, "Level", "min", "10")
    _set(device, "Level", "max", "50")
    _set(device, "Level", "isDisabled", "true")
    expect(switch.locator("h3")).to_have_text(HTML_LABEL)
    expect(dashboard.locator("img")).to_have_count(0)
    expect(button.locator("button.push")).to_have_text("STOPPED")
    expect(switch.locator(".switch-state")).to_have_text("STOPPED")
    expect(slider.locator("input[type=range]")).to_have_attribute("max", "50")
    expect(slider.locator("input[type=range]")).to_have_attribute("min", "10")
    expect(slider.locator("input[type=range]")).to_be_disabled()
    expect(gauge.locator("svg.gauge")).to_have_attribute("aria-label", re.compile(r"of 10 to 50$"))
    assert _accent(switch) == "#D3435C"
    device.publish("ds/Pump", "1", qos=1)
    expect(button.locator("button.push")).to_have_text("RUNNING")
    expect(switch.locator(".switch-state")).to_have_text("RUNNING")
    shot(page, f"widget-props-app-{size}")
    if size == "phone":
        readme_view(page, "app-widget-properties")

    _set(device, "Level", "isHidden", "true")
    expect(slider).to_be_hidden()
    expect(gauge).to_be_hidden()
    device.publish("ds/Level/prop/isHidden/erase", "", qos=1)
    expect(slider).to_be_visible()

    _refused_colors(seeded, device)
    assert _accent(switch) == "#D3435C"
    page.reload()
    expect(dashboard.locator("section.mw")).to_have_count(4)
    expect(switch.locator("h3")).to_have_text(HTML_LABEL)
    assert _accent(switch) == ""
    assert page.title() != "1"
    assert errors == []
