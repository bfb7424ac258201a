"""Tenancy and roles over HTTP: a parent organization P with two sibling children A and B.
Every /api route is called by A's administrator with B's resources: each answers 404 and
changes nothing. A parent sees its children only with ``orgs.view_sub``. Then each built-in
role and a custom role against the routes they may and may not use."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.accounts import ADMIN, STAFF, USER, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.tenants import two_tenants

ALL_BUT_VIEW_SUB = [
    "users.view",
    "users.invite",
    "users.edit",
    "users.suspend",
    "users.logout",
    "users.delete",
    "roles.view",
    "roles.edit",
    "audit.view",
    "devices.view",
    "devices.edit",
    "devices.move",
    "orgs.create",
    "orgs.edit",
    "orgs.move",
    "orgs.delete",
]


@dataclass
class Tenant:
    org: int
    admin: Api
    member: dict[str, Any]
    role: int
    invitation: int
    device: int


@dataclass
class World:
    acc: AccountsStack
    root: Api
    parent: int
    a: Tenant
    b: Tenant
    parent_admin: Api
    parent_manager: Api


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(pg_server, template_db, "tenants"):
        base = two_tenants(acc)
        root, tenants = base.root, []
        for child in (base.a, base.b):
            name, org, admin = child.name, child.org, child.admin
            member = invite_and_join(acc, admin, org, f"member-{name}@example.com", STAFF)
            role = admin.post("/api/roles", json={"name": f"Viewer {name}", "permissions": ["users.view"]}).json()["id"]
            invitation = admin.post(
                "/api/invitations", json={"email": f"later-{name}@example.com", "role_id": USER}
            ).json()["id"]
            r = root.put(f"/api/devices/{child.device.id}/tags", json={"tags": [f"tenant {name}", "shared name"]})
            assert r.status_code == 200, r.text
            tenants.append(Tenant(org, admin, member.me, role, invitation, child.device.id))
            member.close()
        parent_admin = invite_and_join(acc, root, base.parent, "admin-p@example.com", ADMIN)
        manager_role = parent_admin.post("/api/roles", json={"name": "Manager", "permissions": ALL_BUT_VIEW_SUB})
        assert manager_role.status_code == 201, manager_role.text
        manager = invite_and_join(acc, parent_admin, base.parent, "manager-p@example.com", manager_role.json()["id"])
        yield World(acc, root, base.parent, tenants[0], tenants[1], parent_admin, manager)
        base.close()
        for api in (parent_admin, manager):
            api.close()


def calls_on(b: Tenant, a: Tenant) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every route, aimed at tenant ``b``'s resources (``a`` is the caller's own)."""
    uid = b.member["id"]
    return [
        ("GET", f"/api/orgs/{b.org}", None),
        ("PATCH", f"/api/orgs/{b.org}", {"name": "Taken"}),
        ("DELETE", f"/api/orgs/{b.org}", None),
        ("POST", f"/api/orgs/{b.org}/move", {"parent_id": a.org}),
        ("POST", "/api/orgs", {"name": "Inside B", "parent_id": b.org}),
        ("POST", f"/api/orgs/{a.org}/move", {"parent_id": b.org}),
        ("GET", f"/api/users?org_id={b.org}", None),
        ("GET", f"/api/users/{uid}", None),
        ("PATCH", f"/api/users/{uid}", {"name": "Renamed"}),
        ("DELETE", f"/api/users/{uid}", None),
        ("POST", f"/api/users/{uid}/suspend", None),
        ("POST", f"/api/users/{uid}/activate", None),
        ("POST", f"/api/users/{uid}/logout", None),
        ("PATCH", f"/api/users/{a.member['id']}", {"role_id": b.role}),
        ("GET", f"/api/roles?org_id={b.org}", None),
        ("GET", f"/api/roles/{b.role}", None),
        ("PATCH", f"/api/roles/{b.role}", {"permissions": []}),
        ("DELETE", f"/api/roles/{b.role}", None),
        ("POST", "/api/roles", {"name": "Planted", "permissions": [], "org_id": b.org}),
        ("POST", "/api/invitations", {"email": "spy@example.com", "role_id": USER, "org_id": b.org}),
        ("GET", f"/api/invitations?org_id={b.org}", None),
        ("DELETE", f"/api/invitations/{b.invitation}", None),
        ("GET", f"/api/devices?org_id={b.org}", None),
        ("GET", f"/api/devices/{b.device}", None),
        ("POST", f"/api/devices/{b.device}/move", {"org_id": a.org}),
        ("POST", f"/api/devices/{a.device}/move", {"org_id": b.org}),
        ("GET", f"/api/devices/{b.device}/tags", None),
        ("PUT", f"/api/devices/{b.device}/tags", {"tags": ["planted"]}),
        ("GET", f"/api/tags?org_id={b.org}", None),
        ("GET", f"/api/audit?org_id={b.org}", None),
    ]


def snapshot(w: World, t: Tenant) -> dict[str, Any]:
    api = w.root
    return {
        "org": api.get(f"/api/orgs/{t.org}").json(),
        "users": api.get(f"/api/users?org_id={t.org}").json(),
        "roles": api.get(f"/api/roles?org_id={t.org}").json(),
        "invitations": api.get(f"/api/invitations?org_id={t.org}").json(),
        "devices": api.get(f"/api/devices?org_id={t.org}").json(),
        "tags": api.get(f"/api/devices/{t.device}/tags").json(),
        "tags_in_use": api.get(f"/api/tags?org_id={t.org}").json(),
        "orgs": api.get("/api/orgs").json(),
    }


@pytest.mark.parametrize("direction", ["a->b", "b->a"])
def test_no_route_reaches_a_sibling_tenant(world: World, direction: str) -> None:
    me, other = (world.a, world.b) if direction == "a->b" else (world.b, world.a)
    before = snapshot(world, other), snapshot(world, me)
    for method, url, body in calls_on(other, me):
        r = me.admin.request(method, url, json=body)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
        assert "not found" in r.json()["error"]["message"]
    assert (snapshot(world, other), snapshot(world, me)) == before
    listed = {o["id"] for o in me.admin.get("/api/orgs").json()}
    assert listed == {me.org}
    assert {u["org_id"] for u in me.admin.get("/api/users").json()["content"]} == {me.org}
    assert [d["id"] for d in me.admin.get("/api/devices").json()["content"]] == [me.device]
    mine = "tenant A" if me is world.a else "tenant B"
    assert me.admin.get("/api/tags").json() == [{"tag": "shared name", "devices": 1}, {"tag": mine, "devices": 1}]


def test_a_parent_sees_its_children_only_with_the_permission(world: World) -> None:
    seen = {o["id"] for o in world.parent_admin.get("/api/orgs").json()}
    assert seen == {world.parent, world.a.org, world.b.org}
    assert world.parent_admin.get(f"/api/users/{world.a.member['id']}").status_code == 200
    assert world.parent_admin.get(f"/api/devices?org_id={world.b.org}").json()["totalElements"] == 1
    manager = world.parent_manager  # every permission but orgs.view_sub
    assert {o["id"] for o in manager.get("/api/orgs").json()} == {world.parent}
    for method, url, body in calls_on(world.a, Tenant(world.parent, manager, {"id": 0}, 0, 0, 0)):
        if "/move" in url and str(world.parent) in url.split("/")[3:4]:
            continue  # aims at the manager's own organization, not at A
        r = manager.request(method, url, json=body)
        assert r.status_code == 404, (method, url, r.status_code, r.text)


def test_tree_moves_keep_depth_and_refuse_cycles(world: World) -> None:
    api = world.parent_admin
    c = api.post("/api/orgs", json={"name": "C", "parent_id": world.a.org}).json()
    r = api.post("/api/orgs", json={"name": "Too deep", "parent_id": c["id"]})  # root, P, A, C = 4 levels
    assert r.status_code == 400 and "at most 4 levels" in r.json()["error"]["message"]
    r = api.post(f"/api/orgs/{world.a.org}/move", json={"parent_id": c["id"]})
    assert r.status_code == 400 and "under itself" in r.json()["error"]["message"]
    r = api.post(f"/api/orgs/{c['id']}/move", json={"parent_id": world.b.org})
    assert r.status_code == 200 and r.json()["parent_id"] == world.b.org
    r = api.post(
        f"/api/orgs/{world.a.org}/move", json={"parent_id": world.b.org}
    )  # A would put C... A has no child now
    assert r.status_code == 200
    r = api.post(f"/api/orgs/{world.a.org}/move", json={"parent_id": world.parent})
    assert r.status_code == 200
    assert api.post(f"/api/orgs/{world.parent}/move", json={"parent_id": world.a.org}).status_code == 403
    assert api.delete(f"/api/orgs/{world.b.org}").status_code == 409  # not empty
    actions = [e["action"] for e in api.get(f"/api/audit?org_id={c['id']}").json()["content"]]
    assert actions == ["org.move", "org.create"]
    assert api.delete(f"/api/orgs/{c['id']}").status_code == 204
    assert api.get(f"/api/orgs/{c['id']}").status_code == 404
    assert api.get(f"/api/audit?org_id={world.b.org}").json()["content"][0]["action"] == "org.delete"


def test_device_move_is_audited_with_who_and_where_from(world: World) -> None:
    api = world.parent_admin
    dev = world.a.device
    assert api.post(f"/api/devices/{dev}/move", json={"org_id": world.b.org}).json()["org_id"] == world.b.org
    assert world.a.admin.get(f"/api/devices/{dev}").status_code == 404
    assert world.b.admin.get(f"/api/devices/{dev}").status_code == 200
    assert api.post(f"/api/devices/{dev}/move", json={"org_id": world.a.org}).json()["org_id"] == world.a.org
    entry = world.a.admin.get("/api/audit").json()["content"][0]
    assert entry["action"] == "device.move" and entry["actor_email"] == "admin-p@example.com"
    assert entry["ip"] == "127.0.0.1" and entry["details"] == {"from_org_id": world.b.org, "to_org_id": world.a.org}


def test_builtin_staff_and_user_roles(world: World) -> None:
    acc, a = world.acc, world.a
    staff = acc.login("member-A@example.com", "a-good-password-1")
    assert staff.get("/api/users").status_code == 200
    assert staff.get("/api/devices").json()["totalElements"] == 1
    for method, url, body in [
        ("POST", "/api/invitations", {"email": "x@example.com", "role_id": USER}),
        ("POST", "/api/orgs", {"name": "Nope"}),
        ("GET", "/api/roles", None),
        ("GET", "/api/audit", None),
        ("POST", f"/api/devices/{a.device}/move", {"org_id": a.org}),
        ("POST", f"/api/users/{a.member['id']}/suspend", None),
    ]:
        r = staff.request(method, url, json=body)
        assert r.status_code == 403 and "lacks the permission" in r.json()["error"]["message"], (url, r.text)
    user = invite_and_join(acc, a.admin, a.org, "user-A@example.com", USER)
    assert user.get("/api/users").status_code == 403
    assert user.get("/api/devices").json()["totalElements"] == 0  # owns none yet
    with acc.db() as db:
        db.execute("UPDATE device SET owner_id = %s WHERE id = %s", (user.me["id"], a.device))
    assert [d["id"] for d in user.get("/api/devices").json()["content"]] == [a.device]
    assert user.post(f"/api/devices/{a.device}/move", json={"org_id": a.org}).status_code == 403
    assert {o["id"] for o in user.get("/api/orgs").json()} == {a.org}
    staff.close()
    user.close()


def test_custom_role_grants_exactly_its_permissions_and_never_more(world: World) -> None:
    acc, a = world.acc, world.a
    r = a.admin.post("/api/roles", json={"name": "Auditor", "permissions": ["audit.view", "users.view"]})
    assert r.status_code == 201 and r.json()["builtin"] is False
    auditor_role = r.json()["id"]
    auditor = invite_and_join(acc, a.admin, a.org, "auditor-A@example.com", auditor_role)
    assert auditor.get("/api/audit").status_code == 200 and auditor.get("/api/users").status_code == 200
    assert auditor.get("/api/devices").status_code == 403
    # a change to the role applies to its users at once
    a.admin.patch(f"/api/roles/{auditor_role}", json={"permissions": ["devices.view"]})
    assert auditor.get("/api/audit").status_code == 403 and auditor.get("/api/devices").status_code == 200
    # bad and escalating requests
    r = a.admin.post("/api/roles", json={"name": "Bad", "permissions": ["users.fly"]})
    assert r.status_code == 400 and "unknown permission" in r.json()["error"]["message"]
    assert a.admin.post("/api/roles", json={"name": "admin", "permissions": []}).status_code == 409
    assert a.admin.patch(f"/api/roles/{ADMIN}", json={"name": "Boss"}).status_code == 403
    r = world.parent_manager.post("/api/roles", json={"name": "Wider", "permissions": ["orgs.view_sub"]})
    assert r.status_code == 403 and "orgs.view_sub" in r.json()["error"]["message"]
    manager_id = world.parent_manager.me["id"]
    r = world.parent_manager.patch(f"/api/users/{manager_id}", json={"role_id": ADMIN})
    assert r.status_code == 403
    assert a.admin.delete(f"/api/roles/{auditor_role}").status_code == 409  # still given to a user
    listed = {p["name"] for p in auditor.get("/api/permissions").json()}
    assert "orgs.view_sub" in listed and len(listed) > 30
    auditor.close()


def test_invitations_expire_work_once_and_are_limited_per_day(world: World) -> None:
    acc, b = world.acc, world.b
    r = b.admin.post("/api/invitations", json={"email": "member-A@example.com", "role_id": USER})
    assert r.status_code == 409  # has an account already
    r = b.admin.post("/api/invitations", json={"email": "once@example.com", "role_id": STAFF})
    token = acc.outbox.last_token("once@example.com")
    with acc.client() as anon:
        preview = anon.get(f"/api/invitations/preview?token={token}").json()
        assert preview["email"] == "once@example.com" and preview["organization"] == "B"
        body = {"token": token, "password": "a-good-password-1"}
        assert anon.post("/api/invitations/accept", json={**body, "password": "short"}).status_code == 400
        r = anon.post("/api/invitations/accept", json=body)
        assert r.status_code == 201 and r.json()["org_id"] == b.org and r.json()["role_id"] == STAFF
        r = anon.post("/api/invitations/accept", json=body)
        assert r.status_code == 400 and r.json()["error"]["message"] == "this link has already been used"
        b.admin.post("/api/invitations", json={"email": "slow@example.com", "role_id": USER})
        slow = acc.outbox.last_token("slow@example.com")
        with acc.db() as db:
            db.execute(
                "UPDATE account_token SET expires_at = now() - interval '1 second' WHERE email = %s",
                ("slow@example.com",),
            )
        r = anon.post("/api/invitations/accept", json={"token": slow, "password": "a-good-password-1"})
        assert r.status_code == 400 and r.json()["error"]["message"] == "this link has expired"
        inv = b.admin.post("/api/invitations", json={"email": "gone@example.com", "role_id": USER}).json()
        gone = acc.outbox.last_token("gone@example.com")
        assert b.admin.delete(f"/api/invitations/{inv['id']}").status_code == 204
        r = anon.post("/api/invitations/accept", json={"token": gone, "password": "a-good-password-1"})
        assert r.status_code == 400 and r.json()["error"]["message"] == "this link was withdrawn"
    with acc.db() as db:
        sent = db.execute(
            "SELECT count(*) FROM account_token WHERE purpose = 'invitation' AND org_id = %s", (b.org,)
        ).fetchone()
    assert sent is not None
    for i in range(25 - sent[0]):
        r = b.admin.post("/api/invitations", json={"email": f"bulk{i}@example.com", "role_id": USER})
        assert r.status_code == 201, r.text
    r = b.admin.post("/api/invitations", json={"email": "one-too-many@example.com", "role_id": USER})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert (
        world.a.admin.post("/api/invitations", json={"email": "fine@example.com", "role_id": USER}).status_code == 201
    )


def test_device_tags_are_checked_audited_and_follow_the_roles(world: World) -> None:
    acc, a = world.acc, world.a
    url = f"/api/devices/{a.device}/tags"
    r = a.admin.put(url, json={"tags": [" Floor 1 ", "Floor 1", "shared name", "tenant A"]})
    assert r.status_code == 200 and r.json() == {"device_id": a.device, "tags": ["Floor 1", "shared name", "tenant A"]}
    assert a.admin.get(url).json()["tags"] == ["Floor 1", "shared name", "tenant A"]
    entry = a.admin.get("/api/audit").json()["content"][0]
    assert (entry["action"], entry["target_id"], entry["details"]) == (
        "device.tags_update",
        str(a.device),
        {"added": ["Floor 1"], "removed": []},
    )
    assert a.admin.put(url, json={"tags": ["tenant A", "Floor 1", "shared name"]}).status_code == 200
    assert a.admin.get("/api/audit").json()["content"][0]["id"] == entry["id"]  # nothing changed, nothing logged
    for body, message in [
        ({"tags": ["x" * 65]}, "a tag has at most 64"),
        ({"tags": ["a\nb"]}, "control character"),
        ({"tags": [" "]}, "cannot be empty"),
        ({"tags": [f"t{i}" for i in range(33)]}, "at most 32 tags"),
        ({"tags": "Floor 1"}, "tags"),
        ({"labels": []}, "labels"),
    ]:
        r = a.admin.put(url, json=body)
        assert r.status_code == 400 and message in r.text, (body, r.text)
    assert a.admin.get(url).json()["tags"] == ["Floor 1", "shared name", "tenant A"]
    in_use = {t["tag"]: t["devices"] for t in world.parent_admin.get("/api/tags").json()}
    assert in_use == {"Floor 1": 1, "shared name": 2, "tenant A": 1, "tenant B": 1}
    assert world.parent_admin.get(f"/api/tags?org_id={world.b.org}").json() == [
        {"tag": "shared name", "devices": 1},
        {"tag": "tenant B", "devices": 1},
    ]

    staff = acc.login("member-A@example.com", "a-good-password-1")  # devices.edit
    assert staff.put(url, json={"tags": ["shared name", "tenant A"]}).json()["tags"] == ["shared name", "tenant A"]
    own_role = a.admin.post(
        "/api/roles", json={"name": "Own editor", "permissions": ["devices.view", "devices.edit.own"]}
    )
    viewer_role = a.admin.post("/api/roles", json={"name": "Tag viewer", "permissions": ["devices.view"]})
    own_editor = invite_and_join(acc, a.admin, a.org, "own-editor-A@example.com", own_role.json()["id"])
    viewer = invite_and_join(acc, a.admin, a.org, "viewer-A@example.com", viewer_role.json()["id"])
    user = invite_and_join(acc, a.admin, a.org, "tagger-A@example.com", USER)  # devices.view.own, devices.edit.own
    assert viewer.get(url).json()["tags"] == ["shared name", "tenant A"]
    r = viewer.put(url, json={"tags": []})
    assert r.status_code == 403 and "lacks the permission" in r.json()["error"]["message"]
    r = own_editor.put(url, json={"tags": []})
    assert r.status_code == 403 and "only the devices you own" in r.json()["error"]["message"]
    assert user.get(url).status_code == 404 and user.put(url, json={"tags": []}).status_code == 404
    assert user.get("/api/tags").json() == []  # tags of devices the user does not see stay hidden
    with acc.db() as db:
        owner = db.execute("SELECT owner_id FROM device WHERE id = %s", (a.device,)).fetchone()
        db.execute("UPDATE device SET owner_id = %s WHERE id = %s", (user.me["id"], a.device))
    try:
        assert user.put(url, json={"tags": ["mine"]}).json()["tags"] == ["mine"]
        assert user.get("/api/tags").json() == [{"tag": "mine", "devices": 1}]
        assert a.admin.get("/api/audit").json()["content"][0]["actor_email"] == "tagger-A@example.com"
    finally:
        with acc.db() as db:
            db.execute("UPDATE device SET owner_id = %s WHERE id = %s", (owner[0] if owner else None, a.device))
        assert a.admin.put(url, json={"tags": ["tenant A", "shared name"]}).status_code == 200
        for api in (staff, own_editor, viewer, user):
            api.close()


def test_a_sub_organization_makes_devices_from_templates_above_it_never_from_a_sibling(world: World) -> None:
    """As on Blynk, a manufacturer's templates serve its customers' organizations: A (a child of
    P) may make a device of P's template, never of B's, and the new-device page offers P's."""
    a, b = world.a, world.b

    def template(api: Api, name: str) -> int:
        r = api.post("/api/console/templates", json={"name": name})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    from_parent = template(world.parent_admin, "Parent's thermostat")
    from_sibling = template(b.admin, "B's own thermostat")
    r = a.admin.post("/api/console/devices", json={"name": "From above", "template_id": from_parent})
    assert r.status_code == 201, r.text
    made = a.admin.get(f"/api/devices/{r.json()['id']}").json()
    assert (made["org_id"], made["template_id"]) == (a.org, from_parent)
    r = a.admin.post("/api/console/devices", json={"name": "From the side", "template_id": from_sibling})
    assert r.status_code == 404, r.text
    page = a.admin.get("/devices/new").text
    assert "Parent&#39;s thermostat" in page or "Parent's thermostat" in page
    assert "B&#39;s own thermostat" not in page and "B's own thermostat" not in page


def test_names_taken_in_an_organization_answer_409_and_change_nothing(world: World) -> None:
    """Unique names (a sibling organization, a role, a device moved where its name is taken)
    are refused with 409 and the request's other writes are rolled back with it."""
    a, root = world.a, world.root
    r = root.post("/api/orgs", json={"name": "A", "parent_id": world.parent})
    assert r.status_code == 409 and "an organization named 'A' already exists there" in r.json()["error"]["message"]
    first = a.admin.post("/api/roles", json={"name": "Twice", "permissions": ["users.view"]})
    assert first.status_code == 201, first.text
    r = a.admin.post("/api/roles", json={"name": "Twice", "permissions": []})
    assert r.status_code == 409 and "a role named 'Twice' already exists" in r.json()["error"]["message"]
    assert [x["name"] for x in a.admin.get("/api/roles").json()].count("Twice") == 1
    name = root.get(f"/api/devices/{a.device}").json()["name"]
    made = root.post(
        "/api/console/devices",
        json={"name": name, "template_id": root.get(f"/api/devices/{a.device}").json()["template_id"]},
    )
    assert made.status_code == 201, made.text  # the same name in the root organization is fine
    r = root.post(f"/api/devices/{made.json()['id']}/move", json={"org_id": a.org})
    assert r.status_code == 409 and "already has a device named" in r.json()["error"]["message"]
    assert root.get(f"/api/devices/{made.json()['id']}").json()["org_id"] != a.org
    assert root.delete(f"/api/roles/{first.json()['id']}").status_code == 204  # Litestar: DELETE answers 204
