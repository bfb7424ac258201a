"""Hostile names everywhere the console shows one (issue #11, item 1: stored XSS).

Every field a user or a device can fill (template, datastream, units, widget title, event,
metadata field and value, device, tag, organization, user, role, firmware file, shipment, a
device's string value, widget label and logged event, a mobile widget's title, options and
format) holds markup that runs script if a page
ever treats it as HTML. A real Chromium visits every console page that shows them (the
dashboard editor with its datastream select, the device dashboard with a chart, live values,
htmx search and polling, Blynk.Air, the mobile dashboard editor and the app's device page) and the test proves that:

- no injected script ran (``window.__xss`` is never assigned, no dialog opened);
- the text appears literally where it belongs (the editor's option label among others);
- no Content-Security-Policy violation was reported while the console did its own work: a
  violation would mean either an injection the policy had to stop or a console feature that
  needs an exception in the policy.

Screenshots go to ``.pytest-artifacts/console/hostile-*.png``."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect

from tests.e2e.console_browser import browser, shot  # noqa: F401 (fixture)
from tests.integration.ota.ota_support import image
from tests.support.accounts import ROOT_ADMIN, Api
from tests.support.images import png
from tests.support.stack import StackConfig

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim


def hostile(tag: str) -> str:
    """Markup that runs ``__xss = tag`` wherever it is parsed as HTML (in text or in a quoted
    attribute) and calls ``alert`` wherever it is pasted into a quoted script string."""
    return f"\"'><img src=x onerror=__xss='{tag}'>'-alert(1)-'"


def hostile_short(tag: str) -> str:
    """Markup that runs ``__xss = tag``, for fields of at most 40 characters."""
    return f"\"><img src=x onerror=__xss='{tag}'>"


def hostile_long(tag: str) -> str:
    """The same, plus a script element, for fields that take ``/`` and 100 characters."""
    return hostile(tag) + f"</script><script>__xss='{tag}'</script>"


WATCH = """
(() => {
  const report = (kind, detail) => window.__openblynkReport(kind, String(detail));
  Object.defineProperty(window, "__xss", { configurable: false, get() { return undefined; },
                                           set(value) { report("script ran", value); } });
  document.addEventListener("securitypolicyviolation", (e) => report("csp violation",
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber} ${e.sample}`));
})();
"""
"""Runs first in every document: any injected ``__xss = ...`` and every CSP violation is reported."""


@dataclass
class Seeded:
    """What the hostile fixture stored, by the names the console shows."""

    template_id: int
    device_id: int
    token: str
    names: dict[str, str]
    firmware_id: int
    shipment_id: int
    automation_id: int = 0


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    expect.set_options(timeout=TIMEOUT_MS)
    yield
    expect.set_options(timeout=5_000)


def _ok(r: httpx.Response, *codes: int) -> Any:
    assert r.status_code in (codes or (200, 201)), (r.request.url, r.status_code, r.text)
    return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None


@pytest.fixture
def seeded(stack: StackConfig) -> Iterator[Seeded]:
    suffix = uuid.uuid4().hex[:4]
    n = {
        "template": hostile_long(f"t{suffix}"),
        "ds0": hostile("ds0"),
        "ds1": hostile("ds1"),
        "ds2": hostile("ds2"),
        "ds5": hostile("ds5"),
        "units": hostile("units"),
        "title": hostile("title"),
        "event": hostile_long("event"),
        "event_description": hostile_long("eventdesc"),
        "meta": hostile("meta"),
        "meta_value": hostile_long("metavalue") + " javascript:__xss='url'",
        "device": f"D{suffix} '-alert-' '__xss'",  # device names take letters, digits, spaces, ' - _ only
        "tag": hostile(f"tag{suffix}"),
        "org": hostile_long(f"o{suffix}"),
        "user": hostile_long("user"),
        "role": hostile(f"r{suffix}"),
        "firmware": hostile(f"fw{suffix}") + ".bin",
        "shipment": hostile_short(f"s{suffix}"),
        "value": hostile_long("value"),
        "live": hostile_long("live"),
        "label": hostile("label"),
        "logged": hostile_long("logged"),
        "automation": hostile_long(f"a{suffix}"),
        "scene": hostile(f"sc{suffix}"),
        "subject": hostile_long("subject"),
        "mtitle": hostile("mtitle"),
        "opt0": hostile_short("opt0"),
        "opt1": hostile_short("opt1"),
        "format": hostile_short("format") + " /pin/",
        "image": hostile("image") + ".png",
    }
    with Api(stack.base_url) as api:
        api.login(*ROOT_ADMIN)
        _ok(api.post("/api/orgs", json={"name": n["org"]}))
        _ok(api.post("/api/roles", json={"name": n["role"], "permissions": ["devices.view"]}))
        _ok(api.patch(f"/api/users/{api.me['id']}", json={"name": n["user"]}))
        template = _ok(api.post("/api/console/templates", json={"name": n["template"]}))
        tid = template["id"]
        for ds in (
            {
                "pin": "V0",
                "name": n["ds0"],
                "type": "double",
                "min": 0,
                "max": 100,
                "units": n["units"],
                "save_raw": True,
            },
            {"pin": "V1", "name": n["ds1"], "type": "integer", "min": 0, "max": 10},
            {"pin": "V2", "name": n["ds2"], "type": "location"},
            {"pin": "V5", "name": n["ds5"], "type": "string", "save_raw": True},
        ):
            _ok(api.post(f"/api/console/templates/{tid}/datastreams", json=ds))
        _ok(api.post(f"/api/console/templates/{tid}/metadata", json={"name": n["meta"], "type": "text"}))
        _ok(
            api.post(
                f"/api/console/templates/{tid}/events",
                json={
                    "code": "hot",
                    "name": n["event"],
                    "type": "warning",
                    "description": n["event_description"],
                    "notify": {"in_app": True, "recipients": ["admins"], "meta_fields": [n["meta"]]},
                },
            )
        )
        widgets = [
            {"id": "value", "type": "value", "pin": 0, "x": 0, "y": 0, "w": 3, "h": 2},
            {"id": "chart", "type": "chart", "pin": 0, "x": 3, "y": 0, "w": 6, "h": 4, "title": n["title"]},
            {"id": "gauge", "type": "gauge", "pin": 0, "x": 9, "y": 0, "w": 3, "h": 3},
            {"id": "switch", "type": "switch", "pin": 1, "x": 0, "y": 2, "w": 3, "h": 2},
            {"id": "slider", "type": "slider", "pin": 1, "x": 0, "y": 4, "w": 4, "h": 2},
            {"id": "number", "type": "numeric_input", "pin": 1, "x": 4, "y": 4, "w": 4, "h": 2},
            {"id": "map", "type": "map", "pin": 2, "x": 8, "y": 4, "w": 4, "h": 4},
            {"id": "text", "type": "value", "pin": 5, "x": 0, "y": 6, "w": 4, "h": 2},
            {"id": "terminal", "type": "terminal", "pin": 5, "x": 0, "y": 8, "w": 6, "h": 4},
        ]
        _ok(api.put(f"/api/console/templates/{tid}/dashboard", json={"widgets": widgets}))
        options = [{"value": 0, "label": n["opt0"]}, {"value": 1, "label": n["opt1"]}]
        mobile = [
            {"id": "m-title", "type": "value", "pin": 5, "title": n["mtitle"]},
            {"id": "m-seg", "type": "segmented", "pin": 1, "options": options, "w": 4},
            {"id": "m-format", "type": "labeled_value", "pin": 5, "format": n["format"], "w": 4},
            {"id": "m-menu", "type": "menu", "pin": 1, "options": options},
            {"id": "m-term", "type": "terminal", "pin": 5, "w": 4, "h": 2},
        ]
        _ok(api.put(f"/api/console/templates/{tid}/mobile-dashboard", json={"widgets": mobile}))
        device = _ok(api.post("/api/console/devices", json={"name": n["device"], "template_id": tid}))
        _ok(api.put(f"/api/devices/{device['id']}/tags", json={"tags": [n["tag"]]}))
        _ok(
            api.put(f"/api/console/devices/{device['id']}/metadata", json={"name": n["meta"], "value": n["meta_value"]})
        )
        lines = io.StringIO()
        csv.writer(lines).writerows([["serial"], [n["meta_value"]]])
        made = _ok(
            api.post(
                "/api/inject/static-tokens/import",
                json={"template_id": tid, "csv": lines.getvalue(), "mapping": {"serial": n["meta"]}},
            )
        )
        export = api.get("/api/inject/static-tokens/export.csv", params={"template_id": tid}).text
        code = next(r for r in csv.DictReader(io.StringIO(export)) if r["id"] == str(made["ids"][0]))["claim_code"]
        _ok(api.post("/api/inject/claim", json={"code": code, "name": f"C{suffix} '-alert-'"}), 201)
        firmware = _ok(
            api.post("/api/ota/firmware", params={"filename": n["firmware"]}, content=image("2.0.0"), timeout=30), 201
        )
        n["firmware"] = firmware["filename"]  # the server keeps a safe file name (the info tag takes no markup)
        shipment = _ok(
            api.post(
                "/api/ota/shipments",
                json={"name": n["shipment"], "firmware_id": firmware["id"], "target": {"kind": "tag", "tag": n["tag"]}},
            ),
            201,
        )
        automation = _ok(
            api.post(
                "/api/console/automations",
                json={
                    "name": n["automation"],
                    "condition": {
                        "type": "device_state",
                        "device_id": device["id"],
                        "pin": 0,
                        "op": "lt",
                        "value": -30,
                    },
                    "actions": [
                        {"type": "control", "target": {"tag": n["tag"]}, "pin": 1, "value": "1"},
                        {"type": "email", "to": "owner", "subject": n["subject"], "body": n["subject"]},
                        {"type": "log_event", "device_id": device["id"], "code": "hot", "description": n["subject"]},
                    ],
                },
            ),
            201,
        )
        scene = _ok(
            api.post(
                "/api/console/automations",
                json={
                    "name": n["scene"],
                    "condition": {"type": "scene"},
                    "actions": [{"type": "control", "target": {"tag": n["tag"]}, "pin": 1, "value": "1"}],
                },
            ),
            201,
        )
        _ok(api.post(f"/api/console/automations/{scene['id']}/run"))
    token = device["token"]
    with httpx.Client(base_url=stack.base_url, timeout=10) as http:
        now = datetime.now(UTC)
        points = [[int((now - timedelta(minutes=m)).timestamp() * 1000), 20 + (m % 7)] for m in range(1, 120)]
        _ok(http.post("/external/api/batch/update", params={"token": token, "pin": "V0"}, json=points))
        for params in ({"V5": n["value"]}, {"V0": "21.5"}, {"V2": "24.1052,56.9496"}):
            _ok(http.get("/external/api/update", params={"token": token, **params}))
        _ok(http.get("/external/api/update/property", params={"token": token, "pin": "V0", "label": n["label"]}))
        _ok(http.get("/external/api/logEvent", params={"token": token, "code": "hot", "description": n["logged"]}))
    yield Seeded(tid, device["id"], token, n, firmware["id"], shipment["id"], automation_id=automation["id"])


@pytest.fixture
def watched_anon(browser: Browser) -> Iterator[tuple[Page, list[str]]]:  # noqa: F811 (fixture)
    """A page whose injected scripts, dialogs, CSP violations and script errors are all collected
    into one list (empty when the console behaved)."""
    context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    found: list[str] = []
    context.expose_function("__openblynkReport", lambda kind, detail: found.append(f"{kind}: {detail}"))
    context.add_init_script(WATCH)
    page = context.new_page()
    page.on("pageerror", lambda exc: found.append(f"page error: {exc}"))

    def dialog(d: Dialog) -> None:
        found.append(f"dialog: {d.message}")
        d.dismiss()

    page.on("dialog", dialog)
    page.on(
        "console",
        lambda m: (
            found.append(f"console: {m.text}")
            if "Content Security Policy" in m.text
            or "Refused to" in m.text
            or (m.type == "error" and not m.text.startswith("Failed to load resource"))
            else None
        ),
    )
    yield page, found
    context.close()


@pytest.fixture
def watched(watched_anon: tuple[Page, list[str]], stack: StackConfig) -> tuple[Page, list[str]]:
    """The same, signed in as the first administrator."""
    page, _ = watched_anon
    page.goto(f"{stack.base_url}/login")
    page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
    page.get_by_label("Password").fill(ROOT_ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/devices$"))
    return watched_anon


def _visit(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    shot(page, f"hostile-{name}")


def test_hostile_names_are_shown_as_text_and_run_nothing(
    stack: StackConfig, seeded: Seeded, watched: tuple[Page, list[str]]
) -> None:
    page, found = watched
    n = seeded.names
    base = stack.base_url
    tid, did = seeded.template_id, seeded.device_id

    # templates: the list, each tab, and the dashboard editor with its datastream select
    _visit(page, f"{base}/templates", "templates")
    expect(page.locator("main")).to_contain_text(n["template"])
    _visit(page, f"{base}/templates/{tid}", "template-info")
    expect(page.locator("h1")).to_have_text(n["template"])
    _visit(page, f"{base}/devices/new?template={tid}", "device-new")
    expect(page.locator("select[name=template_id] option:checked")).to_have_text(n["template"])
    expect(page.locator("select[name=org_id]")).to_contain_text(n["org"])
    _visit(page, f"{base}/templates/{tid}?tab=datastreams", "template-datastreams")
    for key in ("ds0", "ds1", "ds2", "ds5"):
        expect(page.locator("main")).to_contain_text(n[key])
    _visit(page, f"{base}/templates/{tid}?tab=events", "template-events")
    expect(page.locator("main")).to_contain_text(n["event"])
    expect(page.locator('[data-event-notify-form="hot"] input[name="name"]')).to_have_value(n["event"])
    expect(page.locator('[data-event-notify-form="hot"] textarea[name="notify.meta_fields"]')).to_have_value(n["meta"])
    _visit(page, f"{base}/templates/{tid}?tab=metadata", "template-metadata")
    expect(page.locator("main")).to_contain_text(n["meta"])
    _visit(page, f"{base}/templates/{tid}?tab=dashboard", "template-editor")
    canvas = page.locator("#canvas")
    expect(canvas.locator(".widget")).to_have_count(9)
    canvas.locator('.widget[data-id="value"]').click()
    select = page.locator("#inspector").get_by_label("Datastream")
    expect(select.locator("option")).to_have_text(
        [
            f"{n['ds0']} (V0, double)",
            f"{n['ds1']} (V1, integer)",
            f"{n['ds2']} (V2, location)",
            f"{n['ds5']} (V5, string)",
        ]
    )
    expect(select.locator("option:checked")).to_have_text(f"{n['ds0']} (V0, double)")
    expect(canvas.locator('.widget[data-id="value"] .widget-title')).to_have_text(n["ds0"])
    canvas.locator('.widget[data-id="switch"]').click()
    expect(select.locator("option:checked")).to_have_text(f"{n['ds1']} (V1, integer)")
    canvas.locator('.widget[data-id="chart"]').click()
    expect(page.locator("#inspector").get_by_label("Title")).to_have_value(n["title"])
    shot(page, "hostile-template-editor-inspector")
    page.locator("#inspector").get_by_label("Title").fill("")  # the card falls back to the datastream's name
    expect(canvas.locator('.widget[data-id="chart"] .widget-title')).to_have_text(n["ds0"])
    page.get_by_role("button", name="Save dashboard").click()
    expect(page.locator("#editor")).to_have_attribute("data-saved", "9")

    # the mobile dashboard: its editor (the phone preview, the options' text) and the app's device page
    _visit(page, f"{base}/templates/{tid}?tab=mobile", "template-mobile-editor")
    phone = page.locator("#phone")
    expect(phone.locator(".mwidget-title")).to_have_text([n["mtitle"], n["ds1"], n["ds5"], n["ds1"], n["ds5"]])
    phone.locator('.mwidget[data-id="m-seg"]').click()
    options = page.locator("#mobile-inspector").get_by_label("Options (value=label, one a line)")
    expect(options).to_have_value(f"0={n['opt0']}\n1={n['opt1']}")
    phone.locator('.mwidget[data-id="m-format"]').click()
    expect(page.locator("#mobile-inspector").get_by_label("Format (/pin/ is the value)")).to_have_value(n["format"])
    page.get_by_role("button", name="Save mobile dashboard").click()
    expect(page.locator("#mobile-editor")).to_have_attribute("data-saved", "5")
    _visit(page, f"{base}/app#/devices/{did}", "app-mobile-dashboard")
    mobile = page.locator("#mobile-dashboard")
    expect(mobile.locator("section.mw h3")).to_have_text([n["mtitle"], n["ds1"], n["ds5"], n["ds1"], n["ds5"]])
    expect(mobile.locator('section[data-widget="m-title"] output')).to_have_text(n["value"])
    expect(mobile.get_by_role("radio")).to_have_text([n["opt0"], n["opt1"]])
    expect(mobile.locator("select.menu option")).to_have_text(["—", n["opt0"], n["opt1"]])
    expect(mobile.locator("section.mw-labeled_value output")).to_have_text(n["format"].replace("/pin/", n["value"]))
    expect(mobile.locator(".terminal > div")).to_have_text([n["value"]])
    # an image button: its pictures' names in the editor's image library, its title in the app
    with Api(base) as api:
        api.login(*ROOT_ADMIN)
        headers = {"Content-Type": "image/png", "X-CSRF-Token": api.csrf}
        image = _ok(api.post("/api/console/images", params={"name": n["image"]}, content=png(), headers=headers))
        button = {"id": "m-img", "type": "image_button", "pin": 1, "title": n["mtitle"]}
        button |= {"off_image": image["id"], "on_image": image["id"]}
        _ok(api.put(f"/api/console/templates/{tid}/mobile-dashboard", json={"widgets": [button]}))
    _visit(page, f"{base}/templates/{tid}?tab=mobile", "template-mobile-images")
    phone.locator('.mwidget[data-id="m-img"]').click()
    expect(page.locator("#image-library li span")).to_have_text([n["image"]])
    expect(page.get_by_label("Off image").locator("option:checked")).to_have_text(n["image"])
    expect(phone.locator(".mwidget-image")).to_have_attribute("alt", f"off: {n['image']}")
    _visit(page, f"{base}/app#/devices/{did}", "app-image-button")
    expect(page.locator("#mobile-dashboard").get_by_role("button", name=n["mtitle"])).to_be_visible()
    with Api(base) as api:  # without a mobile dashboard the app shows a card a datastream: checked below
        api.login(*ROOT_ADMIN)
        _ok(api.put(f"/api/console/templates/{tid}/mobile-dashboard", json={"widgets": []}))

    # devices: the list, htmx search, the dashboard (chart, live values), the other tabs
    _visit(page, f"{base}/devices", "devices")
    expect(page.locator(f'tr[data-device="{did}"]')).to_contain_text(n["device"])
    page.get_by_label("Search devices").fill(n["device"][:30])  # htmx swaps the rows in
    expect(page).to_have_url(re.compile(r"q="))
    expect(page.locator("#device-rows tr")).to_have_count(1)
    expect(page.locator("#device-rows")).to_contain_text(n["device"])

    _visit(page, f"{base}/devices/{did}", "device-dashboard")
    expect(page.locator("h1")).to_have_text(n["device"])
    dashboard = page.locator("#dashboard")
    expect(dashboard).to_have_attribute("data-live", "connected")
    expect(dashboard).to_have_attribute("data-loaded", "yes")
    expect(page.locator('.widget-value[data-pin="5"] output')).to_have_text(n["value"])
    expect(page.locator(".widget-terminal pre > div")).to_have_text([n["value"]])
    expect(page.locator('.widget-value[data-pin="0"] .widget-title')).to_have_text(n["label"])
    expect(page.locator('.widget-value[data-pin="0"] output')).to_have_text(f"21.5 {n['units']}")
    chart = page.locator(".widget-chart")
    expect(chart).to_have_attribute("data-chart-points", re.compile(r"^[1-9]\d*$"))
    expect(chart.locator(".u-over")).to_be_visible()
    chart.get_by_role("button", name="live").click()
    expect(chart).to_have_attribute("data-chart-end", re.compile(r"^\d+$"))
    with httpx.Client(base_url=base, timeout=10) as http:  # live over the console WebSocket
        for params in ({"V5": n["live"]}, {"V0": "42"}):
            _ok(http.get("/external/api/update", params={"token": seeded.token, **params}))
    expect(page.locator('.widget-value[data-pin="5"] output')).to_have_text(n["live"])
    expect(page.locator(".widget-terminal pre > div")).to_have_text([n["value"], n["live"]])
    expect(page.locator('.widget-value[data-pin="0"] output')).to_have_text(f"42.0 {n['units']}")
    expect(page.locator(".widget-map .coords")).to_have_text("lat 56.94960, lon 24.10520")
    shot(page, "hostile-device-dashboard")

    _visit(page, f"{base}/devices/{did}?tab=info", "device-info")
    expect(page.locator("#tags .badge")).to_have_text([n["tag"]])
    expect(page.locator("#metadata")).to_contain_text(n["meta"])
    assert page.locator('a[href^="javascript:"]').count() == 0
    _visit(page, f"{base}/devices/{did}?tab=timeline", "device-timeline")
    expect(page.locator("main")).to_contain_text(n["logged"])
    _visit(page, f"{base}/devices/{did}?tab=datastreams", "device-datastreams")
    expect(page.locator("main")).to_contain_text(n["ds5"])
    expect(page.locator('[data-value-pin="5"]')).to_have_text(n["live"])
    with httpx.Client(base_url=base, timeout=10) as http:
        _ok(http.get("/external/api/update", params={"token": seeded.token, "V5": n["value"]}))
    expect(page.locator('[data-value-pin="5"]')).to_have_text(n["value"])  # live.js

    # automations: the list, the editor with its pickers and the log of a scene's run
    _visit(page, f"{base}/automations", "automations")
    expect(page.locator("#automation-rows")).to_contain_text(n["automation"])
    expect(page.locator("#automation-rows")).to_contain_text(n["scene"])
    _visit(page, f"{base}/automations/{seeded.automation_id}", "automation-editor")
    expect(page.locator("#automation-editor")).to_have_attribute("data-ready", "yes")
    expect(page.locator("h1")).to_have_text(n["automation"])
    expect(page.get_by_label("Name")).to_have_value(n["automation"])
    condition = page.locator("#condition")
    expect(condition.get_by_label("Device").locator("option:checked")).to_have_text(n["device"])
    expect(condition.get_by_label("Datastream").locator("option:checked")).to_have_text(f"{n['ds0']} (V0, double)")
    actions = page.locator("#actions > li.action")
    expect(actions.nth(0).get_by_label("Tag").locator("option:checked")).to_have_text(n["tag"])
    expect(actions.nth(1).get_by_label("Subject")).to_have_value(n["subject"])
    expect(actions.nth(2).get_by_label("Event").locator("option:checked")).to_have_text(f"{n['event']} (hot)")
    _visit(page, f"{base}/automations/log", "automation-log")
    expect(page.locator("#runs")).to_contain_text(n["scene"])

    # webhooks: the list and the editor (name, header, body, the template picker)
    with Api(base) as api:
        api.login(*ROOT_ADMIN)
        hook = _ok(
            api.post(
                "/api/console/webhooks",
                json={
                    "name": hostile_long("hook"),
                    "trigger": "template_datastream",
                    "template_id": tid,
                    "url": "https://hooks.example/in",
                    "headers": {"X-Name": hostile("header")},
                    "body_kind": "plain",
                    "body": hostile_long("body"),
                },
            )
        )
    _visit(page, f"{base}/webhooks", "webhooks")
    expect(page.locator("#webhook-rows")).to_contain_text(hostile_long("hook"))
    _visit(page, f"{base}/webhooks/{hook['id']}", "webhook")
    expect(page.locator("h1")).to_have_text(hostile_long("hook"))
    expect(page.locator("select[name=template_id] option:checked")).to_have_text(n["template"])
    expect(page.locator("textarea[name=headers]")).to_have_value(f"X-Name: {hostile('header')}\n")
    expect(page.locator("textarea[name=body]")).to_have_value(hostile_long("body"))
    expect(page.locator("select[name=pin] option")).to_have_text(
        ["Any datastream", f"{n['ds0']} (V0)", f"{n['ds1']} (V1)", f"{n['ds2']} (V2)", f"{n['ds5']} (V5)"]
    )

    # Blynk.Inject: static tokens (a CSV's metadata value) and the claim page (the claimed device)
    _visit(page, f"{base}/static-tokens", "static-tokens")
    expect(page.locator("table[data-static-tokens]")).to_contain_text(n["template"])
    expect(page.locator("table[data-static-tokens]")).to_contain_text(n["meta_value"])
    _visit(page, f"{base}/claim", "claim")
    expect(page.locator("table[data-claimed]")).to_contain_text("-alert-")
    _visit(page, f"{base}/provision", "provision")
    expect(page.locator("form[data-provision] select[name=template_id]")).to_contain_text(n["template"])

    # organizations, users, roles, the account
    for path, key in (("/orgs", "org"), ("/users", "user"), ("/roles", "role"), ("/account", "user")):
        _visit(page, base + path, path.strip("/"))
        expect(page.locator("main")).to_contain_text(n[key])

    # organization settings (issue #19): the actions log, OAuth2 clients, a datastream's export form
    _visit(page, f"{base}/audit?action=role.create", "audit")
    expect(page.locator("#audit-rows")).to_contain_text(n["role"])
    with Api(base) as api:
        api.login(*ROOT_ADMIN)
        made = _ok(api.post("/api/oauth2/clients", json={"name": n["role"], "permissions": ["devices.view"]}), 201)
    _visit(page, f"{base}/oauth2-clients", "oauth2-clients")
    expect(page.locator("#client-rows")).to_contain_text(n["role"])
    # MQTT sessions (issue #14): a gateway of that client, with a hostile MQTT client id
    mqtt_client_id = hostile_short("cid")
    gateway = paho.Client(CallbackAPIVersion.VERSION2, client_id=mqtt_client_id, reconnect_on_failure=False)
    gateway.username_pw_set(made["client"]["client_id"], made["client_secret"])
    gateway.connect("127.0.0.1", stack.mqtt_port)
    gateway.loop_start()
    try:
        _visit(page, f"{base}/mqtt-sessions", "mqtt-sessions")
        row = page.locator("#session-rows tr", has_text=mqtt_client_id)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(n["role"])
    finally:
        gateway.disconnect()
        gateway.loop_stop()
    # locations (issue #19): a hostile name and address, a hostile device at it
    with Api(base) as api:
        api.login(*ROOT_ADMIN)
        place = _ok(
            api.post("/api/locations", json={"name": n["role"], "address": n["meta_value"][:300], "lat": 1, "lon": 2})
        )
        _ok(api.put(f"/api/locations/{place['id']}/devices", json={"device_ids": [did]}))
    _visit(page, f"{base}/locations", "locations")
    expect(page.locator("#location-rows")).to_contain_text(n["role"])
    expect(page.locator("#location-rows")).to_contain_text(n["meta_value"][:300])
    expect(page.locator(f"#location-{place['id']}")).to_contain_text(n["device"])
    _visit(page, f"{base}/devices/{did}?tab=datastreams", "device-export")
    expect(page.locator("[data-export-form] select[name=pin] option")).to_have_text(
        [f"{n['ds0']} (V0)", f"{n['ds1']} (V1)", f"{n['ds2']} (V2)", f"{n['ds5']} (V5)"]
    )

    # the app (issue #19): device list and search, a device's live values and timeline, scenes,
    # notifications and the add form's template picker, all built as text
    _visit(page, f"{base}/app#/devices", "app-devices")
    page.get_by_role("searchbox", name="Search devices").fill(n["device"][:30])
    expect(page.locator("#devices a.row")).to_have_count(1)
    expect(page.locator(f'a.row[data-device="{did}"]')).to_contain_text(n["device"])
    page.locator(f'a.row[data-device="{did}"]').click()
    expect(page.locator("#app-title")).to_have_text(n["device"])
    expect(page.locator('[data-datastream="5"] h3')).to_have_text(n["ds5"])
    expect(page.locator('[data-datastream="0"]')).to_contain_text(n["units"])
    expect(page.locator('output[data-pin="5"]')).to_have_text(n["value"])
    expect(page.locator("#timeline")).to_contain_text(n["logged"])
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    with httpx.Client(base_url=base, timeout=10) as http:
        _ok(http.get("/external/api/update", params={"token": seeded.token, "V5": n["live"]}))
    expect(page.locator('output[data-pin="5"]')).to_have_text(n["live"])
    shot(page, "hostile-app-device")
    _visit(page, f"{base}/app#/scenes", "app-scenes")
    expect(page.locator("#scenes")).to_contain_text(n["scene"])
    _visit(page, f"{base}/app#/notifications", "app-notifications")
    expect(page.locator("#notifications")).to_contain_text(n["event"])
    _visit(page, f"{base}/app#/add", "app-add")
    expect(page.get_by_label("Template").locator("option", has_text=n["template"])).to_have_count(1)

    # notifications: the logged event notified the admins (the bell's count, the list, the form)
    _visit(page, f"{base}/notifications", "notifications")
    expect(page.locator("#notifications")).to_contain_text(n["event"])
    expect(page.locator("#notifications")).to_contain_text(n["logged"])
    expect(page.locator("[data-bell-count]")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.locator("#notification-preferences")).to_be_visible()

    # Blynk.Air: firmware, shipments, the new-shipment form, a shipment's page with its polling
    _visit(page, f"{base}/air/firmware", "air-firmware")
    expect(page.locator("#firmware-rows")).to_contain_text(n["firmware"])
    _visit(page, f"{base}/air/shipments", "air-shipments")
    expect(page.locator("main")).to_contain_text(n["shipment"])
    _visit(page, f"{base}/air/shipments/new?firmware={seeded.firmware_id}", "air-new-shipment")
    expect(page.locator("#shipment-form")).to_contain_text(n["device"])
    _visit(page, f"{base}/air/shipments/{seeded.shipment_id}", "air-shipment")
    expect(page.locator("h1")).to_have_text(n["shipment"])
    expect(page.locator("main")).to_contain_text(f"devices tagged {n['tag']!r}")
    page.evaluate("window.__swaps = 0; document.body.addEventListener('htmx:afterSwap', () => window.__swaps++)")
    page.wait_for_function("() => window.__swaps >= 1")  # the progress part was polled and swapped in

    assert page.evaluate("document.documentElement.outerHTML.includes('<img src=\"x\"')") is False
    assert found == []


def test_a_form_gives_way_to_the_pages_own_message(stack: StackConfig, watched_anon: tuple[Page, list[str]]) -> None:
    """``data-then="replace:#id"`` shows a hidden message of the page (it used to parse HTML kept
    in the attribute)."""
    page, found = watched_anon
    page.goto(f"{stack.base_url}/password-reset")
    page.get_by_label("E-mail").fill("nobody@example.com")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator("#done")).to_have_text(
        "If this address has an account, we sent it a link to reset the password."
    )
    expect(page.locator("form")).to_have_count(0)
    assert found == []
