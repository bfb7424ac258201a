"""The installable app (``/app``, issue #19 items 1 and 3) in a real Chromium at phone size
(390x844) and on a desktop, against the real broker and app: the manifest is valid and its icons
resolve, the service worker registers and controls the page, the shell opens offline and says
so; a user finds a device, opens it, switches its relay (a paho device receives the downlink),
watches a value arrive live (in its card and its chart), sees the values greyed "offline since" when the network goes,
runs a scene, reads the bell's notification and adds a device with the manual token flow.
Screenshots ``app-*.png`` under ``.pytest-artifacts/console/``."""

from __future__ import annotations

import re
import struct
import uuid
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from backend.transfer.schemas import DeviceOut
from tests.e2e.console_browser import browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.support.accounts import ROOT_ADMIN, Api
from tests.support.paho import ConnectDevice
from tests.support.stack import StackConfig

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


def png_size(body: bytes) -> tuple[int, int]:
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and body[12:16] == b"IHDR"
    width, height = struct.unpack(">II", body[16:24])
    return int(width), int(height)


def test_the_manifest_is_valid_and_its_icons_resolve(stack: StackConfig) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=10) as anon:
        r = anon.get("/app/manifest.webmanifest")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/manifest+json")
        manifest: dict[str, Any] = r.json()
        assert manifest["name"] == "openblynk" and manifest["short_name"] == "openblynk"
        assert manifest["display"] == "standalone"
        assert manifest["start_url"].startswith("/app") and manifest["scope"] == "/app"
        assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
        assert re.fullmatch(r"#[0-9a-f]{6}", manifest["background_color"])
        sizes = set()
        for icon in manifest["icons"]:
            got = anon.get(icon["src"])
            assert got.status_code == 200, icon
            assert got.headers["content-type"].startswith(icon["type"]), icon
            if icon["type"] == "image/png":
                width, height = png_size(got.content)
                assert icon["sizes"] == f"{width}x{height}", icon
                sizes.add(icon["sizes"])
        assert {"192x192", "512x512"} <= sizes
        sw = anon.get("/app/sw.js")
        assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
        assert sw.headers["service-worker-allowed"] == "/app"
        shell = anon.get("/app")  # the shell holds no user data: public, and sends nobody to sign in
        assert shell.status_code == 200
        assert "worker-src 'self'" in shell.headers["content-security-policy"]
        assert '<link rel="apple-touch-icon" href="/static/console/app/apple-touch-icon.png">' in shell.text
        assert '<meta name="apple-mobile-web-app-capable" content="yes">' in shell.text
        touch = anon.get("/static/console/app/apple-touch-icon.png")
        assert touch.status_code == 200 and png_size(touch.content) == (180, 180)
        data = anon.get("/app/api/devices")  # the data needs the console's session
        assert data.status_code == 302 and data.headers["location"].startswith("/login?next=")


def sign_in(context: BrowserContext, stack: StackConfig) -> Page:
    page = context.new_page()
    page.goto(f"{stack.base_url}/app")
    expect(page).to_have_url(f"{stack.base_url}/login?next=%2Fapp")  # the app asks for the console's session
    page.wait_for_load_state()  # the sign-in page's script is running (the app's script sent it there)
    page.get_by_label("E-mail").fill(ROOT_ADMIN[0])
    page.get_by_label("Password").fill(ROOT_ADMIN[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.base_url}/app")
    return page


def make_world(stack: StackConfig, suffix: str) -> tuple[DeviceOut, int]:
    """A template with a temperature and a relay, a device of it, a scene switching the relay on
    and an unread notification about the device."""
    event = {
        "code": "leak",
        "name": "Water leak",
        "type": "critical",
        "notify": {"in_app": True, "recipients": ["admins"]},
    }
    with Api(stack.base_url) as api:
        api.login(*ROOT_ADMIN)
        template = api.post("/api/console/templates", json={"name": f"Greenhouse {suffix}"}).json()["id"]
        for ds in (
            {"pin": "V0", "name": "Temperature", "type": "double", "min": -40, "max": 85, "units": "°C"},
            {"pin": "V1", "name": "Relay", "type": "integer", "min": 0, "max": 1},
            {"pin": "V2", "name": "Fan speed", "type": "integer", "min": 0, "max": 100},
        ):
            assert api.post(f"/api/console/templates/{template}/datastreams", json=ds).status_code == 200
        assert api.post(f"/api/console/templates/{template}/events", json=event).status_code == 200
        name = f"Greenhouse {suffix}"
        made = api.post("/api/console/devices", json={"name": name, "template_id": template}).json()
        scene = {
            "name": f"Morning {suffix}",
            "enabled": True,
            "condition": {"type": "scene"},
            "actions": [{"type": "control", "target": {"device_id": made["id"]}, "pin": 2, "value": "40"}],
        }
        r = api.post("/api/console/automations", json=scene)
        assert r.status_code == 201, r.text
    return DeviceOut(name, made["id"], made["token"], name, "", True), template


def test_a_user_installs_the_app_and_uses_it_on_a_phone(
    stack: StackConfig,
    browser: Browser,  # noqa: F811 (fixture)
    paho_device: ConnectDevice,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    info, _ = make_world(stack, suffix)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = sign_in(context, stack)
    errors = no_page_errors(page)

    # installable: the service worker registers and, once active, controls the page
    assert page.evaluate("navigator.serviceWorker.ready.then((r) => r.active.scriptURL)").endswith("/app/sw.js")
    page.wait_for_function("navigator.serviceWorker.controller !== null")  # clients.claim() on activation
    assert page.evaluate("navigator.serviceWorker.controller.scriptURL").endswith("/app/sw.js")
    expect(page.locator(".tabs a")).to_have_count(4)
    tab_heights = page.evaluate("[...document.querySelectorAll('.tabs a')].map(a => a.getBoundingClientRect().height)")
    assert min(tab_heights) >= 48, tab_heights  # touch targets
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

    # the device list: search, status
    device = paho_device(stack, info)
    search = page.get_by_role("searchbox", name="Search devices")
    search.fill(f"Greenhouse {suffix}")
    row = page.locator(f'a.row[data-device="{info.id}"]')
    expect(row).to_have_count(1)
    expect(row.locator("[data-presence]")).to_have_text("Online", timeout=TIMEOUT_MS)
    shot(page, "app-phone-devices")
    search.fill(f"nothing-{suffix}")
    expect(page.get_by_text("No device matches.")).to_be_visible()
    search.fill(suffix)
    page.locator(f'a.row[data-device="{info.id}"]').click()

    # a device: live value, relay switch through the console's checked API, timeline
    expect(page.locator("#app-title")).to_have_text(info.name)
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    device.publish("ds/Temperature", "21.5")
    expect(page.locator('output[data-pin="0"]')).to_have_text("21.5", timeout=TIMEOUT_MS)
    chart = page.locator("#chart")  # the last hour of the first numeric datastream, live
    expect(chart).to_have_attribute("data-last", "21.5", timeout=TIMEOUT_MS)
    device.publish("ds/Temperature", "23.5")
    expect(chart).to_have_attribute("data-last", "23.5", timeout=TIMEOUT_MS)
    assert int(chart.get_attribute("data-points") or 0) >= 2
    relay = page.get_by_role("switch", name="Relay")
    expect(relay).to_have_attribute("aria-checked", "false")
    relay.click()
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Relay", b"1")
    expect(relay).to_have_attribute("aria-checked", "true", timeout=TIMEOUT_MS)
    expect(page.locator("#timeline")).to_be_visible()
    shot(page, "app-phone-device")

    # the network goes: the values stay but are greyed and say since when
    context.set_offline(True)
    page.evaluate("window.dispatchEvent(new Event('offline'))")
    expect(page.locator("body")).to_have_attribute("data-net", "offline")
    expect(page.locator('[data-datastream="0"] .stale-note')).to_have_text(re.compile(r"^offline since \d"))
    expect(page.locator("#net")).to_have_text(re.compile(r"^Offline since "))
    # and the app, reloaded offline, opens from the service worker's shell and says it is offline
    page.reload()
    expect(page.locator("#net")).to_have_text(re.compile(r"^Offline since "))
    expect(page.locator(".tabs")).to_be_visible()
    expect(page.locator('output[data-pin="0"]')).to_have_count(0)  # no value shown that is not live
    shot(page, "app-phone-offline")
    context.set_offline(False)
    page.reload()
    expect(page.locator("#net")).to_be_hidden()

    # the bell: a device event notifies; the count rises live and the list reads it
    device.publish("event/leak", "Greenhouse floor wet", qos=1)
    count = page.locator("#bell-count")
    expect(count).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("link", name=re.compile(r"^Notifications")).click()
    item = page.locator("#notifications li.unread", has_text="Greenhouse floor wet")
    expect(item).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # nothing off the side
    shot(page, "app-phone-notifications")
    item.get_by_role("button", name="Read").click()
    expect(page.locator("#notifications li.unread", has_text="Greenhouse floor wet")).to_have_count(0)

    # scenes: run one; the device receives its action
    page.get_by_role("link", name="Scenes").click()
    scene = page.locator("#scenes li", has_text=f"Morning {suffix}")
    scene.get_by_role("button", name="Run").click()
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Fan speed", b"40")
    shot(page, "app-phone-scenes")

    # add a device: the manual token flow, and the claim page's link
    page.get_by_role("link", name="Add").click()
    expect(page.locator("#claim-link")).to_have_attribute("href", "/claim")
    page.get_by_label("Device name").fill(f"Seedling {suffix}")
    page.get_by_label("Template").select_option(label=f"Greenhouse {suffix}")
    page.get_by_role("button", name="Create device").click()
    expect(page.locator("#add-result [data-token]")).to_have_text(re.compile(r"^[A-Za-z0-9_-]{32}$"))
    shot(page, "app-phone-add")
    device.close()
    assert errors == []
    context.close()


def test_the_app_on_a_desktop_and_in_dark_mode(
    stack: StackConfig,
    browser: Browser,  # noqa: F811 (fixture)
) -> None:
    suffix = uuid.uuid4().hex[:6]
    info, _ = make_world(stack, suffix)
    context = browser.new_context(viewport=DESKTOP, color_scheme="dark")
    context.set_default_timeout(TIMEOUT_MS)
    page = sign_in(context, stack)
    errors = no_page_errors(page)
    page.get_by_role("searchbox", name="Search devices").fill(suffix)
    page.locator(f'a.row[data-device="{info.id}"]').click()
    expect(page.locator("#app-title")).to_have_text(info.name)
    expect(page.get_by_role("slider", name="Fan speed")).to_be_visible()
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)", background  # the dark theme, as the system asks
    shot(page, "app-desktop-device-dark")
    assert errors == []
    context.close()
