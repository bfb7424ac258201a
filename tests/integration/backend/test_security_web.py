"""CSRF and the session cookie (issue #11 item 9), against the real app.

Every state-changing route behind the console session (the ``SESSION`` rows of the security
sweep's table, so a new route joins this test too) is sent the call the sweep proved works,
once per way a cross-site attacker could try it: without ``X-CSRF-Token``, with a wrong one,
with another session's, and with the right token but a cross-site ``Origin``, ``Origin: null``
or only a cross-site ``Referer``; then as a plain HTML form would post it (``text/plain``,
``application/x-www-form-urlencoded``, ``multipart/form-data``, no header). Each answers 403,
and nothing in the database changed. The routes that need no session (sign-in, sign-up,
password reset, accepting an invitation) are refused the cross-site variants the same way.

The session cookie is HttpOnly, SameSite=Lax, Path=/, without Domain, Secure when
``OPENBLYNK_SESSION_COOKIE_SECURE=true`` or when a trusted proxy says the request came over
HTTPS; sign-out clears it and ends the session; sign-in always issues a new session id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.backend.test_security_sweep import (
    ROUTES,
    SESSION,
    Call,
    World,
    _image,
    build_tenant,
    close_bridges,
)
from tests.support.accounts import ROOT_ADMIN, USER, AccountsStack, Api, start_accounts_stack
from tests.support.dbstate import changed_tables, settled_state

SAFE = {"GET", "HEAD", "OPTIONS"}
EVIL = "http://evil.example"
CONSOLE_TEMPLATES = Path(__file__).resolve().parents[3] / "console_ui" / "templates"

NO_ID_CALLS: dict[tuple[str, str], Call] = {
    ("POST", "/api/auth/logout"): Call("POST", "/api/auth/logout"),
    ("POST", "/api/auth/logout-all"): Call("POST", "/api/auth/logout-all"),
    ("POST", "/api/auth/password"): Call(
        "POST",
        "/api/auth/password",
        json={"current_password": "a-good-password-1", "new_password": "another-password-2"},
    ),
    ("POST", "/api/inject/claim"): Call("POST", "/api/inject/claim", json={"code": "sqr_" + "C" * 28}),
    ("POST", "/api/inject/claim/headless"): Call(
        "POST", "/api/inject/claim/headless", json={"serial": "SN-1", "pin": "123456"}
    ),
    ("POST", "/api/console/notifications/read-all"): Call("POST", "/api/console/notifications/read-all"),
    ("PUT", "/api/console/notifications/preferences"): Call(
        "PUT", "/api/console/notifications/preferences", json={"email": False}
    ),
    ("POST", "/api/ota/firmware"): Call(
        "POST", "/api/ota/firmware", params={"filename": "csrf.bin"}, content=_image("9.9.9")
    ),
}
"""The state-changing session routes whose sweep row names no id, with a call that would work."""


@dataclass
class Web:
    acc: AccountsStack
    world: World
    other: Api  # another session, of another user

    @property
    def api(self) -> Api:
        return self.world.a.admin


@pytest.fixture(scope="module")
def web(pg_server: str, template_db: str) -> Iterator[Web]:
    for acc in start_accounts_stack(pg_server, template_db, "web", trusted_proxies="127.0.0.1"):
        root = acc.login(*ROOT_ADMIN)
        a = build_tenant(acc, root, "A")
        yield Web(acc, World(acc, root, a, a), root)
        close_bridges(a)
        for api in (root, a.admin, a.bearer):
            api.close()


def session_calls(w: World) -> dict[tuple[str, str], Call]:
    """Every state-changing session route with a call the sweep proved would succeed."""
    calls = {}
    for key, route in ROUTES.items():
        if route.kind != SESSION or key[0] in SAFE:
            continue
        if route.ids:
            calls[key] = next(iter(route.ids.values())).fill(w, w.a, w.a)
        else:
            assert key in NO_ID_CALLS, f"add {key} to NO_ID_CALLS in tests/integration/backend/test_security_web.py"
            calls[key] = NO_ID_CALLS[key]
    return calls


def _form_body(call: Call) -> dict[str, str]:
    return {k: str(v) for k, v in (call.json or {"field": "value"}).items()}


Variant = Callable[[Call, str, str], dict[str, Any]]
"""(call, this session's CSRF token, another session's) -> httpx request arguments (always with
``headers``: without it the test client would add the right token itself)."""


def _json(call: Call, headers: dict[str, str]) -> dict[str, Any]:
    return {"params": call.params, "json": call.json, "content": call.content, "headers": headers}


VARIANTS: dict[str, tuple[Variant, str]] = {
    "no X-CSRF-Token": (lambda c, mine, theirs: _json(c, {}), "CSRF"),
    "a wrong X-CSRF-Token": (lambda c, mine, theirs: _json(c, {"X-CSRF-Token": mine[::-1]}), "CSRF"),
    "another session's X-CSRF-Token": (lambda c, mine, theirs: _json(c, {"X-CSRF-Token": theirs}), "CSRF"),
    "the right token from a cross-site Origin": (
        lambda c, mine, theirs: _json(c, {"X-CSRF-Token": mine, "Origin": EVIL}),
        "cross-site",
    ),
    "the right token with Origin: null": (
        lambda c, mine, theirs: _json(c, {"X-CSRF-Token": mine, "Origin": "null"}),
        "cross-site",
    ),
    "the right token, no Origin and a cross-site Referer": (
        lambda c, mine, theirs: _json(c, {"X-CSRF-Token": mine, "Referer": f"{EVIL}/page.html"}),
        "cross-site",
    ),
    "a text/plain form post": (
        lambda c, mine, theirs: {
            "params": c.params,
            "content": str(c.json or "x=y").encode(),
            "headers": {"Content-Type": "text/plain"},
        },
        "CSRF",
    ),
    "an urlencoded form post": (
        lambda c, mine, theirs: {"params": c.params, "data": _form_body(c), "headers": {}},
        "CSRF",
    ),
    "a multipart form post": (
        lambda c, mine, theirs: {
            "params": c.params,
            "data": _form_body(c),
            "files": {"upfile": ("x.bin", b"x")},
            "headers": {},
        },
        "CSRF",
    ),
}


def test_every_state_changing_session_route_refuses_every_csrf_variant(web: Web) -> None:
    calls = session_calls(web.world)
    assert len(calls) > 35
    before = settled_state(web.acc.config.database_url)
    wrong = []
    signing_out = ("/api/auth/logout", "/api/auth/logout-all")  # last: had one got through, the rest would say 401
    for (method, path), call in sorted(calls.items(), key=lambda item: item[0][1] in signing_out):
        for name, (variant, reason) in VARIANTS.items():
            r = web.api.request(method, call.path, **variant(call, web.api.csrf, web.other.csrf))
            if r.status_code != 403 or reason not in r.text:
                wrong.append(f"{method} {path} with {name}: {r.status_code} {r.text[:150]}")
    assert not wrong, "\n".join(wrong)
    assert changed_tables(before, settled_state(web.acc.config.database_url)) == set()
    assert web.api.get("/api/users/me").status_code == 200  # still signed in: no sign-out got through


def test_routes_without_a_session_refuse_cross_site_requests(web: Web) -> None:
    """Sign-in, sign-up, password reset and accepting an invitation carry no CSRF token: the
    same-origin check alone keeps another site from signing a visitor in (login CSRF) or
    using a link's token on their behalf."""
    acc, a = web.acc, web.world.a
    made = web.other.post(
        "/api/invitations", json={"email": "csrf-accept@example.com", "role_id": USER, "org_id": a.org}
    )
    assert made.status_code == 201, made.text
    invitation = acc.outbox.last_token("csrf-accept@example.com")
    mails = len(acc.outbox.to(a.admin_email)) + 1
    with acc.client() as anon:
        assert (
            anon.post(
                "/api/auth/signup", json={"email": "csrf-signup@example.com", "password": "a-good-password-1"}
            ).status_code
            == 202
        )
        assert anon.post("/api/auth/password-reset", json={"email": a.admin_email}).status_code == 202
    signup = acc.outbox.last_token("csrf-signup@example.com")
    reset = acc.outbox.last_token(a.admin_email, mails)
    calls = {
        "/api/auth/login": {"email": a.admin_email, "password": "a-good-password-1"},
        "/api/auth/signup": {"email": "csrf-other@example.com", "password": "a-good-password-1"},
        "/api/auth/signup/confirm": {"token": signup},
        "/api/auth/password-reset": {"email": a.admin_email},
        "/api/auth/password-reset/confirm": {"token": reset, "password": "a-third-password-3"},
        "/api/invitations/accept": {"token": invitation, "password": "a-good-password-1"},
    }
    public = {
        path
        for (method, path), route in ROUTES.items()
        if route.kind == "public" and method not in SAFE and path.startswith("/api/")
    }
    assert public == set(calls)
    before = settled_state(acc.config.database_url)
    wrong = []
    with acc.client() as anon:
        for path, body in calls.items():
            variants: dict[str, dict[str, Any]] = {
                "a cross-site Origin": {"json": body, "headers": {"Origin": EVIL}},
                "Origin: null": {"json": body, "headers": {"Origin": "null"}},
                "only a cross-site Referer": {"json": body, "headers": {"Referer": f"{EVIL}/x"}},
                "a cross-site urlencoded form": {"data": body, "headers": {"Origin": EVIL}},
                "a cross-site text/plain form": {
                    "content": str(body).encode(),
                    "headers": {"Origin": EVIL, "Content-Type": "text/plain"},
                },
            }
            for name, kwargs in variants.items():
                r = anon.post(path, **kwargs)
                if r.status_code != 403 or "cross-site" not in r.text:
                    wrong.append(f"POST {path} with {name}: {r.status_code} {r.text[:150]}")
    assert not wrong, "\n".join(wrong)
    assert changed_tables(before, settled_state(acc.config.database_url)) == set()
    assert len(acc.outbox.to(a.admin_email)) == mails  # no second reset mail went out


def test_a_session_cookie_does_not_authenticate_the_platform_api(web: Web) -> None:
    """Bearer routes take no cookie, so a cross-site form cannot reach them with one."""
    a = web.world.a
    r = web.api.post(
        "/api/v1/organization/device/datastream",
        json={"deviceId": a.device, "dataStreamId": 1, "value": 0},
        headers={"X-CSRF-Token": web.api.csrf},
    )
    assert r.status_code == 401 and "Bearer" in r.json()["error"]["message"]
    assert web.api.get("/api/v1/organization/profile").status_code == 401


def test_console_forms_post_only_through_the_checked_api(web: Web) -> None:
    """The console's forms are sent by its script as JSON with the CSRF header, and each names a
    route of the table. Without the script (it failed to load), a form of the API must not leak
    its fields: it says ``method="post"`` with no ``action``, so the browser posts the body to the
    page itself, which refuses it (checked below), instead of putting a password in a GET URL."""
    state_changing = {path for (method, path), route in ROUTES.items() if method not in SAFE}
    patterns = [re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$") for p in state_changing]
    forms, targets = 0, set()
    for page in CONSOLE_TEMPLATES.glob("*.html"):
        text = page.read_text()
        for tag in re.findall(r"<form\b[^>]*>", text):
            forms += 1
            method = re.search(r'(?<![-\w])method="([^"]*)"', tag)
            expected = "get" if "hx-get=" in tag else "post"
            assert method is not None and method[1].lower() == expected, (page.name, tag)
            assert "action=" not in tag, (page.name, tag)
        for target in re.findall(r'data-api(?:-click|-change)?="([^"]+)"', text):
            targets.add(re.sub(r"\{\{.*?\}\}", "1", target))
    assert forms > 10 and targets
    unknown = {t for t in targets if not any(p.match(t) for p in patterns)}
    assert unknown == set()
    # a native post of the sign-in form goes to the page, which takes no POST
    with web.acc.client() as anonymous:
        native = anonymous.post("/login", data={"email": "a@b.c", "password": "secret"})
    assert native.status_code == 405


# -- the session cookie ------------------------------------------------------------------------


def _set_cookie(r: httpx.Response, name: str) -> tuple[str, dict[str, str]]:
    """The value and the attributes (lower-case names) of the Set-Cookie for ``name``."""
    for header in r.headers.get_list("set-cookie"):
        if header.split("=", 1)[0].strip() == name:
            parts = [p.strip() for p in header.split(";")]
            attributes = {}
            for part in parts[1:]:
                key, _, value = part.partition("=")
                attributes[key.lower()] = value
            return parts[0].split("=", 1)[1].strip('"'), attributes
    raise AssertionError(f"no Set-Cookie for {name}: {r.headers.get_list('set-cookie')}")


def test_session_cookie_flags_logout_and_rotation(web: Web) -> None:
    acc = web.acc
    credentials = {"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]}
    with acc.client() as browser:
        browser.cookies.set("openblynk_session", "chosen-by-an-attacker")  # session fixation
        r = browser.post("/api/auth/login", json=credentials)
        assert r.status_code == 200, r.text
        value, flags = _set_cookie(r, "openblynk_session")
        assert value != "chosen-by-an-attacker" and len(value) >= 32
        assert "httponly" in flags and flags["samesite"].lower() == "lax" and flags["path"] == "/"
        assert "domain" not in flags and "secure" not in flags  # plain HTTP, OPENBLYNK_SESSION_COOKIE_SECURE=auto
        assert int(flags["max-age"]) > 0
        csrf_value, csrf_flags = _set_cookie(r, "openblynk_csrf")
        assert csrf_value == r.json()["csrf_token"] and "httponly" not in csrf_flags  # the page's script reads it
        assert csrf_flags["samesite"].lower() == "lax" and csrf_flags["path"] == "/" and "domain" not in csrf_flags
        with httpx.Client(base_url=acc.base_url, cookies={"openblynk_session": "chosen-by-an-attacker"}) as attacker:
            assert attacker.get("/api/users/me").status_code == 401
        browser.cookies.clear()
        browser.cookies.set("openblynk_session", value)
        again = browser.post("/api/auth/login", json=credentials)  # signing in again: a new session id
        second, _flags = _set_cookie(again, "openblynk_session")
        assert second != value
        browser.cookies.clear()
        browser.cookies.set("openblynk_session", second)
        out = browser.post("/api/auth/logout", headers={"X-CSRF-Token": again.json()["csrf_token"]})
        assert out.status_code == 200, out.text
        cleared, cleared_flags = _set_cookie(out, "openblynk_session")
        assert cleared == "" and cleared_flags["max-age"] == "0" and cleared_flags["path"] == "/"
        assert "httponly" in cleared_flags
    with httpx.Client(base_url=acc.base_url, cookies={"openblynk_session": second}) as replay:
        assert replay.get("/api/users/me").status_code == 401  # the session ended on the server too


def test_session_cookie_is_secure_when_a_trusted_proxy_says_https(web: Web) -> None:
    credentials = {"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]}
    with web.acc.client() as browser:
        r = browser.post("/api/auth/login", json=credentials, headers={"X-Forwarded-Proto": "https"})
        assert r.status_code == 200, r.text
        assert "secure" in _set_cookie(r, "openblynk_session")[1]
        assert "secure" in _set_cookie(r, "openblynk_csrf")[1]


def test_session_cookie_is_secure_when_the_setting_says_so(pg_server: str, template_db: str) -> None:
    for acc in start_accounts_stack(pg_server, template_db, "secure", session_cookie_secure="true"):
        with acc.client() as browser:
            r = browser.post("/api/auth/login", json={"email": ROOT_ADMIN[0], "password": ROOT_ADMIN[1]})
            assert r.status_code == 200, r.text
            value, flags = _set_cookie(r, "openblynk_session")
            assert "secure" in flags and "httponly" in flags and "domain" not in flags
            assert SimpleCookie(f"openblynk_session={value}")["openblynk_session"].value == value
