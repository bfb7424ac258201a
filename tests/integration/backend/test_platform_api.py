"""The platform API (issue #5 item 4): OAuth2 client credentials as Blynk answers them, Bearer
tokens feeding the same permission guards as the console, every /api/v1/organization route
called across tenants (a parent P with two sibling children A and B), the rate limit, pagination,
history through the query API, and Blynk.Air behind its permissions."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from backend.db.engine import Database
from backend.history.maintenance import trim_actions
from backend.history.packing import pack_closed_days
from ota import build_tag
from tests.support.accounts import ADMIN, STAFF, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.net import wait_for
from tests.support.tenants import two_tenants

V1 = "/api/v1/organization"


class Bearer(httpx.Client):
    """A platform API client holding an access token."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def make_client(api: Api, name: str, org_id: int | None = None, permissions: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "org_id": org_id}
    if permissions is not None:
        body["permissions"] = permissions
    r = api.post("/api/oauth2/clients", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def get_token(base_url: str, made: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(
        f"{base_url}/oauth2/token",
        params={"grant_type": "client_credentials"},
        auth=(made["client"]["client_id"], made["client_secret"]),
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


@dataclass
class Tenant:
    org: int
    admin: Api
    client: dict[str, Any]
    api: Bearer
    device: int
    user: int
    email: str = ""


@dataclass
class World:
    acc: AccountsStack
    root: Api
    parent: int
    a: Tenant
    b: Tenant
    parent_api: Bearer  # every permission, orgs.view_sub included
    parent_narrow: Bearer  # every permission but orgs.view_sub
    template: int


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(pg_server, template_db, "platform"):
        base = two_tenants(acc, save_raw=True)
        tenants = []
        for child in (base.a, base.b):
            made = make_client(child.admin, f"Client {child.name}")
            tenants.append(
                Tenant(
                    child.org,
                    child.admin,
                    made,
                    Bearer(acc.base_url, get_token(acc.base_url, made)["access_token"]),
                    child.device.id,
                    child.admin.me["id"],
                    child.email,
                )
            )
        parent_admin = invite_and_join(acc, base.root, base.parent, "admin-p@example.com", ADMIN)
        wide = get_token(acc.base_url, make_client(parent_admin, "Parent wide"))
        everything = [p["name"] for p in parent_admin.get("/api/permissions").json() if p["name"] != "orgs.view_sub"]
        narrow = get_token(acc.base_url, make_client(parent_admin, "Parent narrow", permissions=everything))
        w = World(
            acc,
            base.root,
            base.parent,
            tenants[0],
            tenants[1],
            Bearer(acc.base_url, wide["access_token"]),
            Bearer(acc.base_url, narrow["access_token"]),
            base.template,
        )
        yield w
        base.close()
        for client in (parent_admin, w.a.api, w.b.api, w.parent_api, w.parent_narrow):
            client.close()


# -- OAuth2 ------------------------------------------------------------------------------------


def test_token_endpoint_answers_as_blynk(world: World) -> None:
    base, made = world.acc.base_url, world.a.client
    cid, secret = made["client"]["client_id"], made["client_secret"]
    assert cid.startswith("oa2-client-id_")
    r = httpx.post(
        f"{base}/oauth2/token", params={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
    )
    body = r.json()
    assert r.status_code == 200 and set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300 and r.headers["cache-control"] == "no-store"
    r = httpx.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
    assert r.status_code == 200  # a form body works too
    wrong = httpx.post(f"{base}/oauth2/token", params={"grant_type": "client_credentials"}, auth=(cid, secret + "x"))
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_client",
        "error_description": "Client ID is not found or password is wrong.",
    }
    unknown = httpx.post(f"{base}/oauth2/token", params={"grant_type": "client_credentials"}, auth=("nobody", secret))
    assert unknown.json() == wrong.json()
    for params, error in [
        ({}, "invalid_request"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "made-up"}, "invalid_grant"),
    ]:
        r = httpx.post(f"{base}/oauth2/token", params=params, auth=(cid, secret))
        assert r.status_code == 400 and r.json()["error"] == error and r.json()["error_description"], (params, r.text)
    r = httpx.post(f"{base}/oauth2/token", params={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_client"
    r = httpx.post(
        f"{base}/oauth2/token",
        params={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic !!notbase64"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_secret_is_stored_hashed_and_shown_once(world: World) -> None:
    made = world.a.client
    with world.acc.db() as db:
        row = db.execute(
            "SELECT secret_hash, row_to_json(c)::text FROM oauth_client c WHERE client_id = %s",
            (made["client"]["client_id"],),
        ).fetchone()
    assert row is not None and bytes(row[0]) == hashlib.sha256(made["client_secret"].encode()).digest()
    assert made["client_secret"] not in row[1]
    listed = world.a.admin.get("/api/oauth2/clients").json()
    assert [c["client_id"] for c in listed] == [made["client"]["client_id"]] and "client_secret" not in listed[0]


def test_access_token_expires_and_refresh_token_works_once(world: World) -> None:
    base = world.acc.base_url
    pair = get_token(base, world.a.client)
    with Bearer(base, pair["access_token"]) as api:
        assert api.get(f"{V1}/profile").status_code == 200
        with world.acc.db() as db:  # five minutes pass
            db.execute(
                "UPDATE oauth_token SET expires_at = now() - interval '1 second' WHERE token_hash = %s",
                (hashlib.sha256(pair["access_token"].encode()).digest(),),
            )
        r = api.get(f"{V1}/profile")
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    cid, secret = world.a.client["client"]["client_id"], world.a.client["client_secret"]
    refresh = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    r = httpx.post(f"{base}/oauth2/token", params=refresh, auth=(cid, secret))
    assert r.status_code == 200 and r.json()["refresh_token"] != pair["refresh_token"]
    with Bearer(base, r.json()["access_token"]) as api:
        assert api.get(f"{V1}/profile").json()["id"] == world.a.org
    again = httpx.post(f"{base}/oauth2/token", params=refresh, auth=(cid, secret))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    other = world.b.client  # a refresh token works only for the client it was given to
    r2 = httpx.post(
        f"{base}/oauth2/token",
        params={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
        auth=(other["client"]["client_id"], other["client_secret"]),
    )
    assert r2.status_code == 400 and r2.json()["error"] == "invalid_grant"
    with world.acc.db() as db:
        db.execute(
            "UPDATE oauth_token SET expires_at = now() - interval '1 second' WHERE token_hash = %s",
            (hashlib.sha256(r.json()["refresh_token"].encode()).digest(),),
        )
    r3 = httpx.post(
        f"{base}/oauth2/token",
        params={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
        auth=(cid, secret),
    )
    assert r3.status_code == 400 and r3.json()["error"] == "invalid_grant"


def test_revoked_client_stops_at_once(world: World) -> None:
    base, admin = world.acc.base_url, world.a.admin
    made = make_client(admin, "Short lived")
    with Bearer(base, get_token(base, made)["access_token"]) as api:
        assert api.get(f"{V1}/profile").status_code == 200
        assert world.b.admin.delete(f"/api/oauth2/clients/{made['client']['id']}").status_code == 404
        revoked = admin.delete(f"/api/oauth2/clients/{made['client']['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert api.get(f"{V1}/profile").status_code == 401
    r = httpx.post(
        f"{base}/oauth2/token",
        params={"grant_type": "client_credentials"},
        auth=(made["client"]["client_id"], made["client_secret"]),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_client"
    actions = [e["action"] for e in admin.get("/api/audit").json()["content"]]
    assert "oauth_client.revoke" in actions and "oauth_client.create" in actions


def test_clients_never_exceed_their_maker_and_follow_the_guards(world: World) -> None:
    acc, a = world.acc, world.a
    staff = invite_and_join(acc, a.admin, a.org, "staff-platform@example.com", STAFF)
    r = staff.post("/api/oauth2/clients", json={"name": "Mine"})
    assert r.status_code == 403 and "api.clients" in r.json()["error"]["message"]
    role = a.admin.post("/api/roles", json={"name": "Dev", "permissions": ["api.clients", "devices.view"]}).json()
    dev = invite_and_join(acc, a.admin, a.org, "dev-platform@example.com", role["id"])
    r = dev.post("/api/oauth2/clients", json={"name": "Wider", "permissions": ["devices.edit"]})
    assert r.status_code == 403 and "devices.edit" in r.json()["error"]["message"]
    r = dev.post("/api/oauth2/clients", json={"name": "Bad", "permissions": ["devices.fly"]})
    assert r.status_code == 400 and "unknown permission" in r.json()["error"]["message"]
    assert dev.post("/api/oauth2/clients", json={"name": "X", "org_id": world.b.org}).status_code == 404
    made = dev.post("/api/oauth2/clients", json={"name": "Reader"}).json()
    assert made["client"]["permissions"] == ["api.clients", "devices.view"]
    with Bearer(acc.base_url, get_token(acc.base_url, made)["access_token"]) as api:
        assert api.get(f"{V1}/devices").status_code == 200
        r = api.post(f"{V1}/device/datastream", json={"deviceId": a.device, "dataStreamId": 1, "value": 1})
        assert r.status_code == 403 and "lacks the permission" in r.json()["error"]["message"]
        assert api.get(f"{V1}/users").status_code == 403
    r = httpx.get(f"{acc.base_url}{V1}/devices")
    assert r.status_code == 401 and "Bearer" in r.json()["error"]["message"]
    r = httpx.get(f"{acc.base_url}{V1}/devices", headers={"Authorization": "Bearer made-up"})
    assert r.status_code == 401
    staff.close()
    dev.close()


# -- cross-tenant ------------------------------------------------------------------------------


def platform_calls(b: Tenant, a: Tenant) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every platform route that names a resource, aimed at tenant ``b``'s (``a`` is the caller's)."""
    d = b.device
    return [
        ("GET", f"{V1}/device?deviceId={d}", None),
        ("GET", f"{V1}/device/baseInfo?deviceId={d}", None),
        ("PUT", f"{V1}/device?deviceId={d}", {"name": "Taken"}),
        ("DELETE", f"{V1}/device?deviceId={d}", None),
        ("DELETE", f"{V1}/device/clear?deviceId={d}", None),
        ("GET", f"{V1}/device/online?deviceId={d}", None),
        ("DELETE", f"{V1}/device/owner?deviceId={d}", None),
        ("POST", f"{V1}/device/transfer", {"deviceId": d, "newOrgId": a.org}),
        ("POST", f"{V1}/device/transfer", {"deviceId": a.device, "newOrgId": b.org}),
        ("POST", f"{V1}/device/transfer", {"deviceId": a.device, "newUserId": b.user}),
        ("POST", f"{V1}/device/trigger-event", {"deviceId": d, "eventCode": "overheat"}),
        ("GET", f"{V1}/device/timeline?deviceId={d}", None),
        ("GET", f"{V1}/device/metafield?deviceId={d}", None),
        ("POST", f"{V1}/device/metafield", {"deviceId": d, "metaFieldName": "Time Zone", "value": "UTC"}),
        ("GET", f"{V1}/device/datastreams?deviceId={d}", None),
        ("POST", f"{V1}/device/datastream", {"deviceId": d, "dataStreamId": 1, "value": 1}),
        ("POST", f"{V1}/device/datastreams", {"deviceId": d, "values": {"1": 1}}),
        (
            "POST",
            f"{V1}/device/datastream/property",
            {"deviceId": d, "dataStreamId": 1, "property": "color", "value": "#FF0000"},
        ),
        ("GET", f"{V1}/device/datastream/history?deviceId={d}&pin=v0", None),
        ("GET", f"{V1}/device/datastream/series?deviceId={d}&pin=v0&from=0", None),
        ("GET", f"{V1}/device/datastream/raw?deviceId={d}&pin=v0&from=0", None),
        ("GET", f"{V1}/device/datastream/export?deviceId={d}&pin=v0&from=0", None),
        ("POST", f"{V1}/device/create", {"templateId": 0, "name": "Planted", "orgId": b.org}),
        ("GET", f"{V1}?orgId={b.org}", None),
        ("DELETE", f"{V1}?orgId={b.org}", None),
        ("POST", f"{V1}/create", {"name": "Inside B", "parentOrganizationId": b.org}),
        ("GET", f"{V1}/users?orgId={b.org}", None),
        ("GET", f"{V1}/user?userId={b.user}", None),
        ("PUT", f"{V1}/users/role?userId={b.user}&roleId=3", None),
        ("POST", f"{V1}/users/invite", {"email": "spy@example.com", "roleId": 3, "orgId": b.org}),
        ("GET", f"{V1}/device/tags?deviceId={d}", None),
        ("GET", f"{V1}/tags?orgId={b.org}", None),
        ("GET", f"{V1}/device/by-owner?ownerEmail={b.email}&orgId={b.org}", None),
        ("GET", f"{V1}/device/by-user-org?userEmail={b.email}", None),
        ("GET", f"{V1}/device/last-activated?orgId={b.org}&minutes=60", None),
        ("POST", f"{V1}/device/import/batch", {"deviceId": d, "dataStreamId": 0, "values": [{"value": 1, "ts": 0}]}),
        (
            "POST",
            f"{V1}/users/create-in-org",
            {"email": "planted@example.com", "password": "a-good-password-1", "roleId": 3, "orgId": b.org},
        ),
        (
            "POST",
            f"{V1}/users/create",
            {"email": "planted@example.com", "password": "a-good-password-1", "roleId": 3, "orgId": b.org},
        ),
        ("POST", f"{V1}/users/transfer", {"userId": b.user, "targetOrgId": a.org, "roleId": 3}),
        ("POST", f"{V1}/users/transfer", {"userId": a.user, "targetOrgId": b.org, "roleId": 3}),
        ("GET", f"{V1}/device/logs?deviceId={d}", None),
    ]


def tenant_state(w: World, t: Tenant) -> dict[str, Any]:
    with w.acc.db() as db:
        device = db.execute("SELECT org_id, name, owner_id FROM device WHERE id = %s", (t.device,)).fetchone()
        counts = db.execute(
            """SELECT (SELECT count(*) FROM datastream_value WHERE device_id = %(d)s),
            (SELECT count(*) FROM device_event WHERE device_id = %(d)s), (SELECT count(*) FROM device_property
            WHERE device_id = %(d)s), (SELECT count(*) FROM organization WHERE parent_id = %(o)s),
            (SELECT count(*) FROM account_token WHERE org_id = %(o)s), (SELECT role_id FROM app_user WHERE id = %(u)s),
            (SELECT org_id FROM app_user WHERE id = %(u)s), (SELECT count(*) FROM app_user WHERE org_id = %(o)s),
            (SELECT count(*) FROM app_user WHERE email = 'planted@example.com')""",
            {"d": t.device, "o": t.org, "u": t.user},
        ).fetchone()
    return {"device": device, "counts": counts}


@pytest.mark.parametrize("direction", ["a->b", "b->a"])
def test_no_platform_route_reaches_a_sibling_tenant(world: World, direction: str) -> None:
    me, other = (world.a, world.b) if direction == "a->b" else (world.b, world.a)
    calls = platform_calls(other, me)
    calls[22] = ("POST", f"{V1}/device/create", {"templateId": world.template, "name": "Planted", "orgId": other.org})
    before = tenant_state(world, other), tenant_state(world, me)
    for method, url, body in calls:
        r = me.api.request(method, url, json=body)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
        assert "not found" in r.json()["error"]["message"].lower(), r.text
    assert (tenant_state(world, other), tenant_state(world, me)) == before
    listed = me.api.get(f"{V1}/devices", params={"includeSubOrgDevices": "true"}).json()
    assert [d["id"] for d in listed["content"]] == [me.device] and listed["totalElements"] == 1
    assert [d["id"] for d in me.api.get(f"{V1}/search/devices").json()["content"]] == [me.device]
    assert {u["orgId"] for u in me.api.get(f"{V1}/users").json()["content"]} == {me.org}
    assert [o["id"] for o in me.api.get(f"{V1}/search").json()["content"]] == [me.org]
    assert me.api.get(f"{V1}/templates").json()["totalElements"] == 0  # the template is the root's
    assert me.api.get(f"{V1}/template?templateId={world.template}").status_code == 404


def test_a_parent_sees_its_children_only_with_the_permission(world: World) -> None:
    wide, narrow = world.parent_api, world.parent_narrow
    seen = wide.get(f"{V1}/devices", params={"includeSubOrgDevices": "true", "size": 100}).json()
    assert {world.a.device, world.b.device} <= {d["id"] for d in seen["content"]}
    assert wide.get(f"{V1}/devices").json()["totalElements"] == 0  # its own organization has none
    assert wide.get(f"{V1}/device?deviceId={world.a.device}").json()["orgId"] == world.a.org
    assert wide.get(f"{V1}?orgId={world.b.org}").json()["parentOrganizationId"] == world.parent
    assert wide.get(f"{V1}/user?userId={world.b.user}").status_code == 200
    assert wide.get(f"{V1}/device/tags?deviceId={world.a.device}").status_code == 200
    assert wide.get(f"{V1}/tags?orgId={world.b.org}").status_code == 200
    assert wide.get(f"{V1}/device/last-activated?orgId={world.a.org}").status_code == 200
    by_org = wide.get(f"{V1}/device/by-user-org?userEmail={world.b.email}").json()
    assert [d["id"] for d in by_org["content"]] == [world.b.device]
    for child in (world.a, world.b):
        for method, url, body in platform_calls(child, Tenant(world.parent, world.root, {}, narrow, 0, 0)):
            if body and body.get("deviceId") == 0:
                continue  # aims at the caller's own (absent) device, not at the child
            r = narrow.request(method, url, json=body)
            assert r.status_code == 404, (method, url, r.status_code, r.text)
    r = narrow.get(f"{V1}/devices", params={"includeSubOrgDevices": "true"})
    assert r.json()["totalElements"] == 0


def test_openapi_schema_lists_the_platform_api(world: World) -> None:
    r = httpx.get(f"{world.acc.base_url}/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in (
        "/oauth2/token",
        f"{V1}/devices",
        f"{V1}/device/datastream/history",
        f"{V1}/device/datastream/series",
        "/api/oauth2/clients",
        "/api/ota/shipments",
    ):
        assert path in paths, path
    assert r.json()["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"


def test_the_openapi_document_is_served_without_the_cdn_viewers(world: World) -> None:
    """Swagger, ReDoc, RapiDoc and Elements load scripts from CDNs, which the console's CSP
    refuses: only the document is served, and under the same headers as every other answer."""
    root = httpx.get(f"{world.acc.base_url}/schema")
    assert root.status_code == 200
    assert root.headers["content-type"].startswith("application/")
    assert root.json()["info"]["title"] == "openblynk"
    for viewer in ("swagger", "redoc", "rapidoc", "elements", "oauth2-redirect.html"):
        r = httpx.get(f"{world.acc.base_url}/schema/{viewer}")
        assert r.status_code == 404, viewer
        assert "<script" not in r.text, viewer


def test_static_tokens_answer_blynks_page_where_they_answered_501(world: World) -> None:
    """The last of Blynk's routes this server answered 501 (automations came with issue #13,
    static tokens with #17; tests/integration/backend/test_inject_static_tokens.py tests them)."""
    r = world.a.api.get(f"{V1}/static-tokens")
    assert r.status_code == 200 and r.json() == {"content": [], "totalElements": 0}, r.text
    assert httpx.get(f"{world.acc.base_url}{V1}/static-tokens").status_code == 401


def test_users_register_emails_a_link_that_makes_a_client_organization(world: World) -> None:
    """Blynk's users/register: 204, then the e-mailed link (once, before it expires) lets the
    person choose a name and password, and makes them Admin of a new organization under the
    caller's. It always acts in the caller's own organization, so it names no other tenant."""
    acc, a = world.acc, world.a
    address = f"reg-{uuid.uuid4().hex[:8]}@example.com"
    r = a.api.post(f"{V1}/users/register", json={"email": address, "locale": "en_US"})
    assert r.status_code == 204, r.text
    token = acc.outbox.last_token(address)
    with acc.client() as anon:
        preview = anon.get("/api/invitations/preview", params={"token": token})
        assert preview.json()["organization"] == "your own organization under A", preview.text
        r = anon.post(
            "/api/invitations/accept", json={"token": token, "password": "a-good-password-1", "name": "Reg User"}
        )
        assert r.status_code == 201, r.text
        user = r.json()
        again = anon.post("/api/invitations/accept", json={"token": token, "password": "a-good-password-1"})
        assert again.status_code == 400 and "already been used" in again.json()["error"]["message"]
    with acc.db() as db:
        org = db.execute("SELECT parent_id, name FROM organization WHERE id = %s", (user["org_id"],)).fetchone()
    assert org == (a.org, "Reg User") and user["role_id"] == 1
    signed_in = acc.login(address, "a-good-password-1")
    assert signed_in.me["org_id"] == user["org_id"]
    signed_in.close()
    assert a.api.post(f"{V1}/users/register", json={"email": address}).status_code == 409  # has an account
    assert a.api.post(f"{V1}/users/register", json={"email": "not an address"}).status_code == 400
    no_orgs = get_token(acc.base_url, make_client(a.admin, "No orgs", permissions=["users.invite", "users.view"]))
    with Bearer(acc.base_url, no_orgs["access_token"]) as narrow:
        assert narrow.post(f"{V1}/users/register", json={"email": f"x-{address}"}).status_code == 403
    late = f"late-{address}"
    assert a.api.post(f"{V1}/users/register", json={"email": late}).status_code == 204
    with acc.db() as db:
        db.execute("UPDATE account_token SET expires_at = now() - interval '1 minute' WHERE email = %s", (late,))
        db.commit()
    with acc.client() as anon:
        r = anon.post(
            "/api/invitations/accept", json={"token": acc.outbox.last_token(late), "password": "a-good-password-1"}
        )
    assert r.status_code == 400 and "expired" in r.json()["error"]["message"]


# -- rate limit ------------------------------------------------------------------------------------


def test_rate_limit_per_organization(world: World) -> None:
    a, b = world.a, world.b
    assert a.api.get(f"{V1}/profile").status_code == 200
    with world.acc.db() as db:  # as if 10,000 requests had just been made in this minute
        db.execute("UPDATE api_rate SET count = 10000, window_start = now() WHERE org_id = %s", (a.org,))
    r = a.api.get(f"{V1}/profile")
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 60
    assert "10000" in r.json()["error"]["message"]
    assert b.api.get(f"{V1}/profile").status_code == 200  # another organization is not held back
    with world.acc.db() as db:  # the minute is over
        db.execute("UPDATE api_rate SET window_start = now() - interval '61 seconds' WHERE org_id = %s", (a.org,))
    assert a.api.get(f"{V1}/profile").status_code == 200


# -- devices, values, history ----------------------------------------------------------------------


def test_device_lifecycle_and_pagination(world: World) -> None:
    api, org = world.a.api, world.a.org
    made = []
    for i in range(5):
        r = api.post(f"{V1}/device/create", json={"templateId": world.template, "name": f"Page device {i}"})
        assert r.status_code == 201, r.text
        made.append(r.json())
    assert made[0]["orgId"] == org and len(made[0]["token"]) == 32
    full = api.get(f"{V1}/device?deviceId={made[0]['id']}").json()
    assert full["token"] == made[0]["token"] and full["dataStreamValues"][2]["value"] == "none"
    pages = [api.get(f"{V1}/devices", params={"page": p, "size": 2}).json() for p in range(4)]
    assert [len(p["content"]) for p in pages] == [2, 2, 2, 0] and {p["totalElements"] for p in pages} == {6}
    ids = [d["id"] for p in pages for d in p["content"]]
    assert len(set(ids)) == 6 and ids == sorted(ids)
    for bad in ({"size": 0}, {"size": 1001}, {"page": -1}):
        r = api.get(f"{V1}/devices", params=bad)
        assert r.status_code == 400 and "size" in r.json()["error"]["message"]
    r = api.post(f"{V1}/device/create", json={"templateId": world.template, "name": "bad/name"})
    assert r.status_code == 400 and "Device name" in r.json()["error"]["message"]
    r = api.post(f"{V1}/device/create", json={"templateId": "TMPLnothere", "name": "X"})
    assert r.status_code == 404 and r.json()["error"]["message"] == "Template is not found."
    dev = made[0]["id"]
    assert api.put(f"{V1}/device?deviceId={dev}", json={"name": "Renamed"}).json()["name"] == "Renamed"
    assert api.put(f"{V1}/device?deviceId={dev}", json={"name": "Page device 1"}).status_code == 409
    found = api.get(
        f"{V1}/search/devices", params={"query": "page device", "sortBy": "name", "sortOrder": "DESC"}
    ).json()
    assert [d["name"] for d in found["content"]] == [f"Page device {i}" for i in (4, 3, 2, 1)]
    assert api.get(f"{V1}/device/online?deviceId={dev}").json() == {"connected": False}
    token = made[0]["token"]
    assert httpx.get(f"{world.acc.base_url}/external/api/isHardwareConnected", params={"token": token}).text == "false"
    assert api.delete(f"{V1}/device?deviceId={dev}").status_code == 204
    assert api.get(f"{V1}/device?deviceId={dev}").status_code == 404
    r = httpx.get(f"{world.acc.base_url}/external/api/isHardwareConnected", params={"token": token})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Invalid token."
    for d in made[1:]:
        assert api.delete(f"{V1}/device?deviceId={d['id']}").status_code == 204


def test_values_properties_events_and_clear(world: World) -> None:
    api, dev = world.a.api, world.a.device
    assert api.post(f"{V1}/device/datastream", json={"deviceId": dev, "dataStreamId": 1, "value": 7}).status_code == 204
    r = api.post(
        f"{V1}/device/datastreams", json={"deviceId": dev, "values": {"0": 21.5, "v2": "hello", "3": [30.5, 50.25]}}
    )
    assert r.status_code == 204, r.text
    values = {v["pin"]: v["value"] for v in api.get(f"{V1}/device/datastreams?deviceId={dev}").json()}
    assert values == {"v0": 21.5, "v1": 1, "v2": "hello", "v3": [30.5, 50.25]}  # 7 clamped to Power's max 1
    only = api.get(f"{V1}/device/datastreams", params={"deviceId": dev, "pins": "v0,v2"}).json()
    assert [v["dataStreamId"] for v in only] == [0, 2] and only[0]["dataStreamLabel"] == "Temperature"
    r = api.post(f"{V1}/device/datastream", json={"deviceId": dev, "dataStreamId": 0, "value": "warm"})
    assert r.status_code == 400 and "expects a number" in r.json()["error"]["message"]
    r = api.post(f"{V1}/device/datastreams", json={"deviceId": dev, "values": {"0": 1, "9": 1}})
    assert r.status_code == 404 and r.json()["error"]["message"] == "Data stream with identifier 9 is not found!"
    r = api.post(
        f"{V1}/device/datastream/property",
        json={"deviceId": dev, "dataStreamId": 0, "property": "color", "value": "#FF0000"},
    )
    assert r.status_code == 204
    r = api.post(
        f"{V1}/device/datastream/property", json={"deviceId": dev, "dataStreamId": 0, "property": "fly", "value": "x"}
    )
    assert r.status_code == 400 and "unknown property" in r.json()["error"]["message"]
    r = api.post(
        f"{V1}/device/trigger-event", json={"deviceId": dev, "eventCode": "overheat", "eventDescription": "hot"}
    )
    assert r.status_code == 204
    r = api.post(f"{V1}/device/trigger-event", json={"deviceId": dev, "eventCode": "nope"})
    assert r.status_code == 400 and "no event with code" in r.json()["error"]["message"]
    timeline = api.get(f"{V1}/device/timeline?deviceId={dev}&eventType=WARNING").json()
    assert timeline["totalElements"] == 1 and timeline["content"][0]["description"] == "hot"
    r = api.post(
        f"{V1}/device/metafield", json={"deviceId": dev, "metaFieldName": "Time Zone", "value": "Europe/Paris"}
    )
    assert r.status_code == 204
    meta = {m["name"]: m["value"]["value"] for m in api.get(f"{V1}/device/metafield?deviceId={dev}").json()}
    assert meta["Time Zone"] == "Europe/Paris"
    full = api.get(f"{V1}/device?deviceId={dev}").json()
    assert {v["pin"] for v in full["dataStreamValues"]} == {"v0", "v1", "v2", "v3"} and full["metaFieldValues"]
    token = full["token"]
    with world.acc.db() as db:
        now_ms = int(db.execute("SELECT extract(epoch FROM now()) * 1000").fetchone()[0])  # type: ignore[index]
    old = [[now_ms - 86_400_000 * 3 + i * 60_000, 20.0 + i] for i in range(5)]  # three days back: packed below
    assert (
        httpx.post(
            f"{world.acc.base_url}/external/api/batch/update", params={"token": token, "pin": "v0"}, json=old
        ).status_code
        == 200
    )
    history = {"deviceId": dev, "pin": "v0", "from": now_ms - 86_400_000 * 4, "to": now_ms + 60_000, "size": 1}
    wait_for(
        lambda: api.get(f"{V1}/device/datastream/history", params=history).json()["totalElements"] >= 6,
        message="history to be written",
    )

    def stored_rows() -> dict[str, int]:
        with world.acc.db() as db:
            return {
                table: int(
                    db.execute(
                        f"SELECT count(*) FROM {table} WHERE device_id = %s",  # type: ignore[index]
                        (dev,),
                    ).fetchone()[0]
                )
                for table in ("history", "history_packed", "history_minute", "history_hour")
            }

    asyncio.run(_pack(world.acc.config.database_url))  # the old day packed, as the maintenance job does
    assert all(stored_rows().values()), stored_rows()  # today's point raw, the old ones packed
    assert api.delete(f"{V1}/device/clear?deviceId={dev}").status_code == 204
    assert api.get(f"{V1}/device/datastream/history", params=history).json()["totalElements"] == 0
    assert not any(stored_rows().values()), stored_rows()
    values = {v["pin"]: v["value"] for v in api.get(f"{V1}/device/datastreams?deviceId={dev}").json()}
    assert values == {"v0": None, "v1": None, "v2": "none", "v3": None}  # the default stays
    assert api.get(f"{V1}/device/timeline?deviceId={dev}").json()["totalElements"] == 0
    assert api.get(f"{V1}/device/logs?deviceId={dev}").json()["totalElements"] == 0  # the actions log too


async def _pack(url: str) -> None:
    async with Database(url) as db:
        await pack_closed_days(db.pool)


def test_history_pages_buckets_raw_cursor_and_streamed_export(world: World) -> None:
    api, dev, base = world.a.api, world.a.device, world.acc.base_url
    token = api.get(f"{V1}/device?deviceId={dev}").json()["token"]
    with world.acc.db() as db:
        now_ms = int(db.execute("SELECT extract(epoch FROM now()) * 1000").fetchone()[0])  # type: ignore[index]
    start = now_ms - 3_600_000
    points = [[start + i * 1000, float(i % 70)] for i in range(250)] + [[start + 1000, 80.0]]  # two at one timestamp
    r = httpx.post(f"{base}/external/api/batch/update", params={"token": token, "pin": "v0"}, json=points)
    assert r.status_code == 200, r.text
    query = {"deviceId": dev, "pin": "v0", "from": start, "to": start + 300_000}
    wait_for(
        lambda: api.get(f"{V1}/device/datastream/history", params={**query, "size": 1}).json()["totalElements"] == 251,
        message="imported history to be written",
    )
    pages = [
        api.get(f"{V1}/device/datastream/history", params={**query, "page": p, "size": 100}).json() for p in range(3)
    ]
    got = [(p["createdAt"], p["value"]) for page in pages for p in page["content"]]
    assert (
        len(got) == 251 and sorted(got) == sorted((t, v) for t, v in points) and got == sorted(got, key=lambda x: x[0])
    )
    cursor, raw = None, []
    while True:
        page = api.get(
            f"{V1}/device/datastream/raw", params={**query, "limit": 60, **({"cursor": cursor} if cursor else {})}
        ).json()
        raw += [(p["createdAt"], p["value"]) for p in page["content"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(raw) == sorted(got)
    series = api.get(f"{V1}/device/datastream/series", params={**query, "points": 10}).json()
    assert series["source"] == "history" and len(series["buckets"]) <= 10
    assert sum(b["count"] for b in series["buckets"]) == 251 and max(b["max"] for b in series["buckets"]) == 80.0
    with api.stream("GET", f"{V1}/device/datastream/export", params={**query, "format": "csv"}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        lines = "".join(resp.iter_text()).strip().splitlines()
    assert lines[0] == "ts,time,value" and len(lines) == 252
    exported = api.get(f"{V1}/device/datastream/export", params={**query, "format": "json"})
    assert sorted((p["createdAt"], p["value"]) for p in json.loads(exported.text)) == sorted(got)
    for params, text in [
        ({**query, "format": "xml"}, "format is csv or json"),
        ({**query, "points": 0}, "points must be"),
        ({**query, "pin": "v2", "points": 5}, "have no buckets"),
        ({**query, "cursor": "zz"}, "cursor"),
    ]:
        path = "series" if "points" in params else "export" if "format" in params else "raw"
        r = api.get(f"{V1}/device/datastream/{path}", params=params)
        assert r.status_code == 400 and text in r.json()["error"]["message"], (path, r.text)
    r = api.get(f"{V1}/device/datastream/history", params={**query, "pin": "v9"})
    assert r.status_code == 404


# -- Blynk.Air behind its permissions --------------------------------------------------------------


def test_ota_routes_are_guarded_and_scoped_to_the_callers_organization(world: World) -> None:
    a, b, base = world.a, world.b, world.acc.base_url
    assert httpx.get(f"{base}/api/ota/firmware").status_code == 401
    # an info tag with a build date: "another_build" refuses an image without one
    tag = build_tag({"mcu": "1.0.0", "fw-type": "PLAT", "build": "Mar 05 2024 18:29:27"})
    fw = a.admin.post("/api/ota/firmware", params={"filename": "fw.bin"}, content=b"\x00" * 512 + tag + b"\x00" * 512)
    assert fw.status_code == 201, fw.text
    fw_id = fw.json()["id"]
    ship = a.admin.post(
        "/api/ota/shipments",
        json={
            "name": "A rollout",
            "firmware_id": fw_id,
            "target": {"kind": "devices", "device_ids": [a.device]},
            "apply_mode": "another_build",
        },
    )
    assert ship.status_code == 201, ship.text
    sid = ship.json()["id"]
    assert [f["id"] for f in a.admin.get("/api/ota/firmware").json()] == [fw_id]
    assert b.admin.get("/api/ota/firmware").json() == []
    for method, url in [("GET", f"/api/ota/firmware/{fw_id}"), ("DELETE", f"/api/ota/firmware/{fw_id}")]:
        r = b.admin.request(method, url)
        assert r.status_code == 404, (url, r.text)
    r = b.admin.post(
        "/api/ota/shipments",
        json={"name": "Steal", "firmware_id": fw_id, "target": {"kind": "devices", "device_ids": [b.device]}},
    )
    assert r.status_code == 404
    assert [s["id"] for s in b.admin.get("/api/ota/shipments").json()] == []
    for method, url in [
        ("GET", f"/api/ota/shipments/{sid}"),
        ("GET", f"/api/ota/shipments/{sid}/devices"),
        ("POST", f"/api/ota/shipments/{sid}/pause"),
        ("POST", f"/api/ota/shipments/{sid}/cancel"),
        ("DELETE", f"/api/ota/shipments/{sid}"),
    ]:
        r = b.admin.request(method, url)
        assert r.status_code == 404, (url, r.text)
    assert a.admin.get(f"/api/ota/shipments/{sid}").json()["state"] == "live"  # untouched by B
    assert a.admin.post(f"/api/ota/shipments/{sid}/cancel").status_code == 200
    staff = invite_and_join(world.acc, a.admin, a.org, "staff-ota@example.com", STAFF)  # air.view only
    assert staff.get("/api/ota/firmware").status_code == 200
    r = staff.post("/api/ota/firmware", params={"filename": "fw.bin"}, content=b"\x00" * 16)
    assert r.status_code == 403 and "air.ship" in r.json()["error"]["message"]
    assert staff.get("/api/ota/signing-key").status_code == 200
    staff.close()
    assert world.root.get("/api/ota/firmware").json() == []  # the root sees its own organization's only


# -- look-ups, tags, import, users ------------------------------------------------------------------


def test_devices_by_owner_by_user_org_and_last_activated(world: World) -> None:
    a, api = world.a, world.a.api
    made = [
        api.post(f"{V1}/device/create", json={"templateId": world.template, "name": f"Lookup {i}"}).json()
        for i in range(3)
    ]
    for d in made:
        r = api.post(f"{V1}/device/transfer", json={"deviceId": d["id"], "newUserId": a.user})
        assert r.status_code == 204, r.text
    ids = [d["id"] for d in made]
    pages = [
        api.get(f"{V1}/device/by-owner", params={"ownerEmail": a.email.upper(), "page": p, "size": 2}).json()
        for p in range(3)
    ]
    assert [[d["id"] for d in p["content"]] for p in pages] == [ids[:2], ids[2:], []]
    assert {p["totalElements"] for p in pages} == {3} and pages[0]["content"][0]["ownerUserId"] == a.user
    assert api.get(f"{V1}/device/by-owner", params={"ownerEmail": "nobody@example.com"}).json() == {
        "content": [],
        "totalElements": 0,
    }
    r = api.get(f"{V1}/device/by-owner", params={"ownerEmail": " "})
    assert r.status_code == 400 and "e-mail" in r.json()["error"]["message"]
    assert api.get(f"{V1}/device/by-owner").status_code == 400  # ownerEmail is required
    in_org = api.get(f"{V1}/device/by-user-org", params={"userEmail": a.email, "size": 100}).json()
    assert [d["id"] for d in in_org["content"]] == sorted([a.device, *ids]) and in_org["totalElements"] == 4
    r = api.get(f"{V1}/device/by-user-org", params={"userEmail": "nobody@example.com"})
    assert r.status_code == 404 and r.json()["error"]["message"].startswith("User is not found")
    with world.acc.db() as db:  # one was activated long ago
        db.execute("UPDATE device SET created_at = now() - interval '2 hours' WHERE id = %s", (ids[0],))
    recent = api.get(f"{V1}/device/last-activated", params={"minutes": 60}).json()
    assert [d["id"] for d in recent] == [ids[2], ids[1], a.device]  # newest first; a.device came with the world
    assert set(recent[0]) == {"id", "templateId", "orgId", "ownerUserId", "activationTime"}
    assert recent[0]["orgId"] == a.org and recent[0]["ownerUserId"] == a.user and recent[0]["activationTime"] > 0
    assert [d["id"] for d in api.get(f"{V1}/device/last-activated").json()] == [ids[2], ids[1], a.device]
    assert world.parent_api.get(f"{V1}/device/last-activated").json() == []  # never the sub-organizations'
    for bad in (0, 61):
        r = api.get(f"{V1}/device/last-activated", params={"minutes": bad})
        assert r.status_code == 400 and "1 to 60" in r.json()["error"]["message"]
    for d in ids:
        assert api.delete(f"{V1}/device?deviceId={d}").status_code == 204


def test_device_and_organization_tags(world: World) -> None:
    a, api = world.a, world.a.api
    r = a.admin.put(f"/api/devices/{a.device}/tags", json={"tags": ["Floor 1", "north"]})
    assert r.status_code == 200, r.text
    assert api.get(f"{V1}/device/tags?deviceId={a.device}").json() == [
        {"tagOwnerOrgId": a.org, "name": "Floor 1"},
        {"tagOwnerOrgId": a.org, "name": "north"},
    ]
    assert api.get(f"{V1}/tags").json() == [{"name": "Floor 1", "devices": 1}, {"name": "north", "devices": 1}]
    assert api.get(f"{V1}/tags?orgId={a.org}").json() == api.get(f"{V1}/tags").json()
    assert world.b.api.get(f"{V1}/tags").json() == []
    assert world.parent_api.get(f"{V1}/tags").json() == []  # the parent's own organization has no tagged device
    assert world.parent_api.get(f"{V1}/tags?orgId={a.org}").json()[0]["name"] == "Floor 1"
    r = api.get(f"{V1}/device/tags?deviceId=999999")
    assert r.status_code == 404 and r.json() == {
        "error": {"message": "Device with identifier 999999 is not found or belong to another organization."}
    }
    assert a.admin.put(f"/api/devices/{a.device}/tags", json={"tags": []}).status_code == 200
    assert api.get(f"{V1}/device/tags?deviceId={a.device}").json() == []


def test_import_batch_stores_history_through_the_device_apis_path(world: World) -> None:
    a, api = world.a, world.a.api
    now = int(time.time() * 1000)
    body = {
        "deviceId": a.device,
        "dataStreamId": 0,
        "values": [{"value": 20.5, "ts": now - 60_000}, {"value": 22, "ts": now - 30_000}],
    }
    r = api.post(f"{V1}/device/import/batch", json=body)
    assert r.status_code == 204, r.text
    hist = api.get(
        f"{V1}/device/datastream/history", params={"deviceId": a.device, "pin": "v0", "from": now - 120_000, "to": now}
    ).json()
    assert [(p["createdAt"], p["value"]) for p in hist["content"]] == [(now - 60_000, 20.5), (now - 30_000, 22.0)]
    assert api.post(f"{V1}/device/import/batch", json={**body, "dataStreamId": "v0"}).status_code == 204
    r = api.post(f"{V1}/device/import/batch", json={**body, "dataStreamId": 99})
    assert r.status_code == 404 and r.json() == {"error": {"message": "Data stream with identifier 99 is not found!"}}
    r = api.post(f"{V1}/device/import/batch", json={**body, "values": [{"value": 1, "ts": now - 40 * 86_400_000}]})
    assert r.status_code == 400 and "Timestamp is out of range" in r.json()["error"]["message"]
    r = api.post(
        f"{V1}/device/import/batch", json={**body, "values": [{"value": 1, "ts": now}, {"value": "hot", "ts": now}]}
    )
    assert r.status_code == 400  # a wrong type refuses the whole request
    hist = api.get(
        f"{V1}/device/datastream/history",
        params={"deviceId": a.device, "pin": "v0", "from": now - 120_000, "to": now + 1},
    ).json()
    assert hist["totalElements"] == 4  # the two points twice; nothing of the refused requests
    made = make_client(a.admin, "Viewer", permissions=["devices.view"])
    with Bearer(world.acc.base_url, get_token(world.acc.base_url, made)["access_token"]) as viewer:
        r = viewer.post(f"{V1}/device/import/batch", json=body)
        assert r.status_code == 403 and "devices.edit" in r.json()["error"]["message"]
    entries = [e for e in a.admin.get("/api/audit").json()["content"] if e["action"] == "device.import"]
    assert entries and entries[0]["details"] == {"pin": 0, "points": 2}


def test_users_create_create_in_org_and_transfer(world: World) -> None:
    a, api, acc = world.a, world.a.api, world.acc
    body = {"email": "made-in-org@example.com", "password": "a-good-password-1", "name": "Made In Org", "roleId": 3}
    r = api.post(f"{V1}/users/create-in-org", json=body)
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["email"], made["orgId"], made["roleId"], made["status"]) == (body["email"], a.org, 3, "ACTIVE")
    acc.login(body["email"], body["password"]).close()  # the password signs in at once
    with acc.db() as db:
        row = db.execute("SELECT password_hash FROM app_user WHERE id = %s", (made["id"],)).fetchone()
    assert row is not None and row[0].startswith("$argon2id$")
    r = api.post(f"{V1}/users/create-in-org", json=body)
    assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]
    r = api.post(
        f"{V1}/users/create-in-org",
        json={
            **body,
            "email": "h@example.com",
            "password": None,
            "passwordHash": "tk++TTJLCEKfWuhQyGAKCSRMop6wyIexGKylaknsUo8=",
        },
    )
    assert r.status_code == 400 and "passwordHash" in r.json()["error"]["message"]
    r = api.post(f"{V1}/users/create-in-org", json={**body, "email": "short@example.com", "password": "short"})
    assert r.status_code == 400 and "password" in r.json()["error"]["message"]
    r = api.post(f"{V1}/users/create", json={**body, "email": "client@example.com", "name": "Client Co"})
    assert r.status_code == 201, r.text
    client_org = r.json()["orgId"]
    assert api.get(f"{V1}?orgId={client_org}").json()["parentOrganizationId"] == a.org
    assert api.get(f"{V1}?orgId={client_org}").json()["name"] == "Client Co"
    # a role above the caller's permissions is refused, and nothing is made
    role = a.admin.post(
        "/api/roles", json={"name": "Users only", "permissions": ["users.view", "users.invite", "users.edit"]}
    ).json()
    narrow = make_client(a.admin, "Users only", permissions=["users.view", "users.invite", "users.edit"])
    with Bearer(acc.base_url, get_token(acc.base_url, narrow)["access_token"]) as users_only:
        r = users_only.post(f"{V1}/users/create-in-org", json={**body, "email": "admin2@example.com", "roleId": 1})
        assert r.status_code == 403 and "permissions you do not have" in r.json()["error"]["message"]
        r = users_only.post(f"{V1}/users/create", json={**body, "email": "org2@example.com", "roleId": role["id"]})
        assert r.status_code == 403 and "orgs.create" in r.json()["error"]["message"]
        r = users_only.post(f"{V1}/users/create-in-org", json={**body, "email": "ok@example.com", "roleId": role["id"]})
        assert r.status_code == 201, r.text
    staff = make_client(a.admin, "Invite only", permissions=["users.view", "users.invite"])
    with Bearer(acc.base_url, get_token(acc.base_url, staff)["access_token"]) as invite_only:
        r = invite_only.post(f"{V1}/users/create-in-org", json={**body, "email": "no@example.com"})
        assert r.status_code == 403 and "users.edit" in r.json()["error"]["message"]
    with acc.db() as db:
        assert db.execute(
            "SELECT count(*) FROM app_user WHERE email IN ('admin2@example.com', 'org2@example.com', 'no@example.com')"
        ).fetchone() == (0,)
    # transfer into the client organization, with a role there
    r = api.post(f"{V1}/users/transfer", json={"userId": made["id"], "targetOrgId": client_org, "roleId": 2})
    assert r.status_code == 201, r.text
    assert (r.json()["orgId"], r.json()["roleId"]) == (client_org, 2)
    r = api.post(f"{V1}/users/transfer", json={"userId": made["id"], "targetOrgId": 999999, "roleId": 2})
    assert r.status_code == 404 and r.json() == {"error": {"message": "Target organization is not found."}}
    r = api.post(f"{V1}/users/transfer", json={"userId": made["id"], "targetOrgId": a.org, "roleId": 999999})
    assert r.status_code == 404
    actions = [(e["action"], e["target_id"]) for e in a.admin.get("/api/audit", params={"size": 100}).json()["content"]]
    assert ("user.create", str(made["id"])) in actions and ("user.transfer", str(made["id"])) in actions


# -- actions log -----------------------------------------------------------------------------------


async def _trim_actions(url: str) -> int:
    async with Database(url) as db:
        return await trim_actions(db.pool, 30, 7)


def test_actions_log_records_values_set_by_users_and_clients_only(world: World) -> None:
    a, api, dev, acc = world.a, world.a.api, world.a.device, world.acc
    logs = f"{V1}/device/logs"
    with acc.db() as db:
        db.execute("DELETE FROM device_action WHERE device_id = %s", (dev,))
        db.execute("UPDATE device SET online = false, online_via = NULL WHERE id = %s", (dev,))
    assert api.post(f"{V1}/device/datastream", json={"deviceId": dev, "dataStreamId": 1, "value": 1}).status_code == 204
    with acc.db() as db:
        db.execute("UPDATE device SET online = true WHERE id = %s", (dev,))
    try:
        r = a.admin.post(f"/api/console/devices/{dev}/values/0", json={"value": "22.5"})
        assert r.status_code == 200, r.text
    finally:
        with acc.db() as db:
            db.execute("UPDATE device SET online = false WHERE id = %s", (dev,))
    token = api.get(f"{V1}/device?deviceId={dev}").json()["token"]
    assert httpx.get(f"{acc.base_url}/external/api/update?token={token}&v0=19").status_code == 200  # the device's own
    page = api.get(logs, params={"deviceId": dev}).json()
    assert page["totalElements"] == 2, page
    newest, oldest = page["content"]
    assert newest == {
        "triggerUserEmail": a.email,
        "value": 22.5,
        "pin": 0,
        "pinType": "VIRTUAL",
        "isOnline": True,
        "createdAt": newest["createdAt"],
    }
    assert oldest == {
        "triggerUserEmail": f"oauth2:{a.client['client']['client_id']}",
        "value": 1,
        "pin": 1,
        "pinType": "VIRTUAL",
        "isOnline": False,
        "createdAt": oldest["createdAt"],
    }
    assert newest["createdAt"] >= oldest["createdAt"] > 0
    assert api.get(logs, params={"deviceId": dev, "page": 1, "size": 1}).json() == {
        "content": [oldest],
        "totalElements": 2,
    }
    assert api.get(logs, params={"deviceId": dev, "page": 2, "size": 1}).json() == {"content": [], "totalElements": 2}
    assert api.get(logs, params={"deviceId": dev, "size": 101}).status_code == 400
    assert api.get(logs, params={"deviceId": 999999}).status_code == 404
    assert world.parent_api.get(logs, params={"deviceId": dev}).json()["totalElements"] == 2
    with acc.db() as db:  # retention: the raw history's (the template's when it sets one)
        db.execute(
            "UPDATE device_action SET created_at = now() - interval '10 days' WHERE device_id = %s AND pin = 1", (dev,)
        )
        db.execute(
            "INSERT INTO device_action (device_id, pin, value, actor_email, is_online, created_at) "
            "VALUES (%s, 2, 'old', 'x@example.com', false, now() - interval '31 days')",
            (dev,),
        )
    assert asyncio.run(_trim_actions(acc.config.database_url)) == 1
    assert [e["pin"] for e in api.get(logs, params={"deviceId": dev}).json()["content"]] == [0, 1]
    with acc.db() as db:
        db.execute("UPDATE template SET raw_retention_days = 7 WHERE id = %s", (world.template,))
    try:
        assert asyncio.run(_trim_actions(acc.config.database_url)) == 1
    finally:
        with acc.db() as db:
            db.execute("UPDATE template SET raw_retention_days = NULL WHERE id = %s", (world.template,))
    assert [e["pin"] for e in api.get(logs, params={"deviceId": dev}).json()["content"]] == [0]


def test_series_buckets_hold_every_point_from_an_edge_inside_an_hour(world: World) -> None:
    """Issue #20 as reported: 10,000 points a minute apart imported over the last week and read
    from the first one (36 minutes past an hour) to now in 100 buckets: the counts add up to
    every stored point, and the maximum, in those first minutes, shows."""
    api, dev, base = world.b.api, world.b.device, world.acc.base_url
    token = api.get(f"{V1}/device?deviceId={dev}").json()["token"]
    with world.acc.db() as db:
        now_ms = int(db.execute("SELECT extract(epoch FROM now()) * 1000").fetchone()[0])  # type: ignore[index]
    hour = 3_600_000
    first = (now_ms - 10_061 * 60_000) // hour * hour + 36 * 60_000 + 20_000
    points = [[first + i * 60_000, float(i % 89 - 40)] for i in range(10_000)]
    points[3][1] = 85.0
    for i in range(0, len(points), 1000):
        r = httpx.post(
            f"{base}/external/api/batch/update",
            params={"token": token, "pin": "v0"},
            json=points[i : i + 1000],
            timeout=30,
        )
        assert r.status_code == 200, r.text
    query = {"deviceId": dev, "pin": "v0", "from": first, "to": now_ms}
    wait_for(
        lambda: (
            api.get(f"{V1}/device/datastream/history", params={**query, "size": 1}).json()["totalElements"] >= 10_000
        ),
        30,
        message="imported history to be written",
    )
    stored = api.get(f"{V1}/device/datastream/history", params={**query, "size": 1}).json()["totalElements"]
    series = api.get(f"{V1}/device/datastream/series", params={**query, "points": 100}).json()
    assert series["source"] == "history_hour" and len(series["buckets"]) <= 100
    assert sum(b["count"] for b in series["buckets"]) == stored
    assert series["buckets"][0]["ts"] == first and series["buckets"][0]["max"] == 85.0
