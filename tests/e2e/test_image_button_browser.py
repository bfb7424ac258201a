"""The mobile dashboard's image button (issue #19 item 2, Blynk's Image Button), end to end in a
real Chromium at phone size (390x844) against the real broker and app: an administrator adds an
image button on the template's "Mobile dashboard" tab, uploads an off and an on picture to the
organization's image library from the button's settings (the phone preview shows the off one),
sets it to switch mode and saves; a user of a customer organization opens the device in the app,
taps the button (a paho device receives 1 and the picture becomes the on one, loaded from the
console's own origin under its Content-Security-Policy), and the device switching it off brings
the off picture back. Screenshots ``image-button-*.png`` under ``.pytest-artifacts/console/``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from backend.transfer.schemas import DeviceOut
from tests.e2e.console_browser import browser, no_page_errors, shot  # noqa: F401 (fixture)
from tests.e2e.test_mobile_dashboard_browser import sign_in
from tests.support.accounts import ROOT_ADMIN, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.images import png
from tests.support.paho import ConnectDevice

TIMEOUT_MS = 20_000  # a bound for waits, not a timing claim
PHONE: ViewportSize = {"width": 390, "height": 844}
USER_EMAIL, USER_PASSWORD = "lamp-owner@example.com", "a-good-password-1"
OFF_PNG = png(48, 48, (40, 44, 52))
ON_PNG = png(48, 48, (250, 204, 21))


@pytest.fixture(scope="module")
def acc(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    yield from start_accounts_stack(pg_server, template_db, "imagebutton")


def make_world(acc: AccountsStack, root: Api, suffix: str) -> tuple[int, DeviceOut]:
    """A lamp template (an integer 0/1 datastream), a customer organization with a user who may
    see and control its devices, and a device there."""
    tid = root.post("/api/console/templates", json={"name": f"Lamp {suffix}"}).json()["id"]
    ds = {"pin": "V1", "name": "Lamp", "type": "integer", "min": 0, "max": 1}
    assert root.post(f"/api/console/templates/{tid}/datastreams", json=ds).status_code == 200
    home = root.post("/api/orgs", json={"name": f"Flat {suffix}"}).json()["id"]
    role = root.post(
        "/api/roles", json={"name": f"Tenant {suffix}", "permissions": ["devices.view", "devices.edit"], "org_id": home}
    )
    assert role.status_code == 201, role.text
    invite_and_join(acc, root, home, USER_EMAIL, role.json()["id"], password=USER_PASSWORD).close()
    name = f"Desk lamp {suffix}"
    made = root.post("/api/console/devices", json={"name": name, "template_id": tid, "org_id": home})
    assert made.status_code == 201, made.text
    return tid, DeviceOut(name, made.json()["id"], made.json()["token"], name, "", True)


def loaded(img: Locator) -> bool:
    """Whether the browser decoded the picture (the policy let it load, the type was right)."""
    return bool(img.evaluate("el => el.complete && el.naturalWidth > 0"))


def build(page: Page) -> None:
    """The administrator's part, on a phone: an image button with two uploaded pictures, saved."""
    phone = page.locator("#phone")
    inspector = page.locator("#mobile-inspector")
    page.get_by_role("complementary", name="Widgets").get_by_role("button", name="Image button").click()
    expect(inspector.get_by_role("heading", name="Image button")).to_be_visible()
    library = inspector.get_by_role("region", name="Image library")
    expect(library).to_contain_text("No images yet.")
    upload = library.get_by_label("Upload image")
    upload.set_input_files({"name": "lamp-off.png", "mimeType": "image/png", "buffer": OFF_PNG})
    expect(page.locator("#mobile-editor")).to_have_attribute("data-images", "1")
    upload = inspector.get_by_role("region", name="Image library").get_by_label("Upload image")
    upload.set_input_files({"name": "lamp-on.png", "mimeType": "image/png", "buffer": ON_PNG})
    expect(page.locator("#mobile-editor")).to_have_attribute("data-images", "2")
    library = inspector.get_by_role("region", name="Image library")
    expect(library.locator("li span")).to_have_text(["lamp-on.png", "lamp-off.png"])  # newest first
    expect(inspector.get_by_label("Off image").locator("option:checked")).to_have_text("lamp-off.png")
    expect(inspector.get_by_label("On image").locator("option:checked")).to_have_text("lamp-on.png")
    preview = phone.locator('.mwidget[data-type="image_button"] img.mwidget-image')
    expect(preview).to_have_attribute("alt", "off: lamp-off.png")
    expect(preview).to_have_attribute("data-loaded", "yes")
    inspector.get_by_label("Title").fill("Desk lamp")
    inspector.get_by_label("Title").press("Tab")
    inspector.get_by_label("Mode").select_option("switch")
    page.get_by_role("button", name="Save mobile dashboard").click()
    expect(page.locator("#mobile-editor")).to_have_attribute("data-saved", "1")
    expect(page.locator("#mobile-error")).to_have_text("")
    expect(phone.locator(".mwidget-image")).to_have_attribute("data-loaded", "yes")
    assert loaded(phone.locator(".mwidget-image"))
    shot(page, "image-button-editor")


def test_an_admin_adds_an_image_button_and_a_user_switches_the_lamp_with_it(
    acc: AccountsStack,
    browser: Browser,  # noqa: F811 (fixture)
    paho_device: ConnectDevice,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    root = acc.login(*ROOT_ADMIN)
    tid, info = make_world(acc, root, suffix)

    admin = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    admin.set_default_timeout(TIMEOUT_MS)
    page = admin.new_page()
    admin_errors = no_page_errors(page)
    sign_in(page, acc, *ROOT_ADMIN, then=f"/templates/{tid}?tab=mobile")
    build(page)
    saved = root.get(f"/api/console/templates/{tid}/mobile-dashboard").json()["widgets"]
    images = {i["name"]: i["id"] for i in root.get("/api/console/images").json()}
    assert [(w["type"], w["pin"], w["mode"], w["off_image"], w["on_image"]) for w in saved] == [
        ("image_button", 1, "switch", images["lamp-off.png"], images["lamp-on.png"])
    ]
    assert admin_errors == []
    admin.close()
    root.close()

    device = paho_device(acc.config, info)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    app = context.new_page()
    errors = no_page_errors(app)
    sign_in(app, acc, USER_EMAIL, USER_PASSWORD, then="/app")
    expect(app).to_have_url(f"{acc.base_url}/app")
    app.locator(f'a.row[data-device="{info.id}"]').click()
    expect(app.locator("#app-title")).to_have_text(info.name)
    expect(app.locator("body")).to_have_attribute("data-live", "connected")
    button = app.get_by_role("button", name="Desk lamp")
    picture = button.locator("img")
    off_url = f"/api/console/images/{images['lamp-off.png']}/content"
    on_url = f"/api/console/images/{images['lamp-on.png']}/content"
    expect(button).to_have_attribute("aria-pressed", "false")
    expect(picture).to_have_attribute("src", off_url)
    expect(picture).to_have_attribute("data-loaded", off_url)
    assert loaded(picture)
    shot(app, "image-button-app-off")

    button.tap()  # switch mode: on
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Lamp", b"1")
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(picture).to_have_attribute("src", on_url)
    expect(picture).to_have_attribute("data-loaded", on_url)
    assert loaded(picture)
    expect(app.locator("#toast")).to_have_class("")  # the picture without "Sent"
    expect(app.locator("#toast")).to_have_css("opacity", "0")
    shot(app, "image-button-app-on")

    device.publish("ds/Lamp", "0")  # the device switches itself off: the app follows
    expect(button).to_have_attribute("aria-pressed", "false")
    expect(picture).to_have_attribute("data-loaded", off_url)
    button.tap()
    assert device.next(topic_prefix="downlink/ds/") == ("downlink/ds/Lamp", b"1")
    expect(picture).to_have_attribute("src", on_url)
    assert app.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # nothing off the side
    device.close()
    assert errors == []
    context.close()
