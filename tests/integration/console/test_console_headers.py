"""The console's pages carry a strict Content-Security-Policy (no inline script or style, no eval,
everything from the console's own origin), refuse to be framed, do not leak their address in
the Referer and are never sniffed into another type; a device's upload keeps its own sandbox
policy (issue #11, item 1)."""

from __future__ import annotations

import uuid

import httpx

from tests.integration.console.test_console_api import make_device, make_template
from tests.support.accounts import Api
from tests.support.stack import StackConfig

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def assert_page_headers(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("text/html"), (r.url, r.headers)
    assert r.headers["content-security-policy"] == CSP, r.url
    assert r.headers["x-frame-options"] == "DENY", r.url
    assert r.headers["x-content-type-options"] == "nosniff", r.url
    assert r.headers["referrer-policy"] == "same-origin", r.url


def test_every_console_page_carries_the_policy_and_framing_headers(admin: Api) -> None:
    template = make_template(admin)
    device = make_device(admin, template["id"])
    paths = [
        "/devices",
        f"/devices?q={uuid.uuid4().hex}",
        f"/devices/{device.id}",
        *(f"/devices/{device.id}?tab={tab}" for tab in ("info", "timeline", "datastreams")),
        f"/devices/new?template={template['id']}",
        "/templates",
        *(
            f"/templates/{template['id']}?tab={tab}"
            for tab in ("info", "datastreams", "events", "metadata", "dashboard")
        ),
        "/orgs",
        "/users",
        "/roles",
        "/account",
        "/air/shipments",
        "/air/firmware",
        "/air/shipments/new",
    ]
    for path in paths:
        r = admin.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert_page_headers(r)
    missing = admin.get("/devices/987654321")  # the console's error page
    assert missing.status_code == 404
    assert_page_headers(missing)


def test_public_pages_and_static_files(stack: StackConfig) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=10) as anon:
        for path in ("/login", "/password-reset", "/signup", "/app"):
            r = anon.get(path)
            assert r.status_code == 200, path
            assert_page_headers(r)
        r = anon.get("/devices")  # signed out: sent to the sign-in page
        assert r.status_code == 302 and r.headers["location"].startswith("/login")
        for path in ("/static/console/console.js", "/static/console/console.css", "/static/vendor/htmx.min.js"):
            r = anon.get(path)
            assert r.status_code == 200, path
            assert r.headers["x-content-type-options"] == "nosniff", path


def test_a_device_upload_keeps_its_sandbox_policy(stack: StackConfig, admin: Api) -> None:
    device = make_device(admin, make_template(admin)["id"])
    with httpx.Client(base_url=stack.base_url, timeout=10) as http:
        r = http.post(
            "/external/api/upload",
            params={"token": device.token},
            files={"upfile": ("page.html", b"<script>alert(1)</script>", "application/octet-stream")},
        )
        assert r.status_code == 200, r.text
        got = http.get(r.text)
    assert got.status_code == 200
    assert got.headers["content-security-policy"] == "sandbox"
    assert got.headers["x-content-type-options"] == "nosniff"
