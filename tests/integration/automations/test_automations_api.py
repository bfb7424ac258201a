"""Automations through the real app and PostgreSQL: the console's JSON API and the platform API,
who may do what, Blynk's limits, validation with the project's error body, references kept
inside the organization, the audit log, the log of runs and its retention.

The world is tests/support/tenants.py's: a parent P with sibling children A and B, each with an
administrator and a device of the README's thermostat (V0 Temperature double, V1 Power
integer 0..1, V2 Label string; event ``overheat``), the template staying in the root.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from backend.automations.retention import trim_runs
from tests.support.accounts import ROOT_ADMIN, STAFF, USER, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.net import wait_for
from tests.support.tenants import TwoTenants, two_tenants

API = "/api/console/automations"
V1 = "/api/v1/organization"
LIMIT = 4
"""OPENBLYNK_AUTOMATIONS_PER_ORG and OPENBLYNK_ACTIONS_PER_AUTOMATION of this module's app."""


@dataclass
class World:
    acc: AccountsStack
    t: TwoTenants
    staff: Api  # Staff of A: automations.view and .execute
    user: Api  # User of A: automations.view only
    bearer: httpx.Client  # a platform API client of A's administrator


def _token(acc: AccountsStack, api: Api, **client: Any) -> str:
    made = api.post("/api/oauth2/clients", json={"name": f"automations {len(client)}", **client})
    assert made.status_code == 201, made.text
    body = made.json()
    r = httpx.post(
        f"{acc.base_url}/oauth2/token",
        params={"grant_type": "client_credentials"},
        auth=(body["client"]["client_id"], body["client_secret"]),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(
        pg_server, template_db, "automations", automations_per_org=str(LIMIT), actions_per_automation=str(LIMIT)
    ):
        t = two_tenants(acc)
        staff = invite_and_join(acc, t.a.admin, t.a.org, "staff-a@example.com", STAFF)
        user = invite_and_join(acc, t.a.admin, t.a.org, "user-a@example.com", USER)
        r = t.root.put(f"/api/devices/{t.a.device.id}/tags", json={"tags": ["pumps"]})
        assert r.status_code == 200, r.text
        bearer = httpx.Client(
            base_url=acc.base_url, timeout=30, headers={"Authorization": f"Bearer {_token(acc, t.a.admin)}"}
        )
        yield World(acc, t, staff, user, bearer)
        for client in (staff, user, bearer):
            client.close()
        t.close()


@pytest.fixture(autouse=True)
def no_automations(world: World) -> None:
    """Each test starts without automations (the limit counts them)."""
    with world.acc.db() as db:
        db.execute("DELETE FROM automation")


def soil(device: int, pump: int, name: str = "Soil") -> dict[str, Any]:
    """The issue's automation: soil below 20 between 06:00 and 20:00 waters for 10 minutes."""
    return {
        "name": name,
        "condition": {
            "type": "device_state",
            "device_id": device,
            "pin": 0,
            "op": "lt",
            "value": 20,
            "window": {"from": "06:00", "to": "20:00"},
        },
        "actions": [
            {"type": "control", "target": {"device_id": pump}, "pin": 1, "value": "1"},
            {"type": "wait", "seconds": 600},
            {"type": "control", "target": {"device_id": pump}, "pin": 1, "value": "0"},
            {"type": "email", "to": "owner", "subject": "Watered", "body": "{DEVICE_NAME} was dry"},
        ],
    }


def scene(name: str = "Lights", pump: int | None = None, enabled: bool = True) -> dict[str, Any]:
    target = {"tag": "pumps"} if pump is None else {"device_id": pump}
    return {
        "name": name,
        "enabled": enabled,
        "condition": {"type": "scene"},
        "actions": [{"type": "control", "target": target, "pin": 1, "value": "1"}],
    }


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    return r.json() if r.content else None


def refused(r: httpx.Response, status: int) -> str:
    """The message of the project's error body, after checking the status."""
    assert r.status_code == status, (r.status_code, r.text)
    return str(r.json()["error"]["message"])


def audit_actions(api: Api, org: int) -> list[tuple[str, str]]:
    entries = ok(api.get("/api/audit", params={"org_id": org, "size": 100}))["content"]
    return [(e["action"], e["target_id"]) for e in entries if e["target_type"] == "automation"]


def test_the_issue_automation_is_made_changed_switched_and_deleted_with_audit(world: World) -> None:
    a = world.t.a
    made = ok(a.admin.post(API, json=soil(a.device.id, a.device.id)), 201)
    aid = made["id"]
    assert made["org_id"] == a.org and made["enabled"] is True
    assert made["condition"]["window"] == {"from": "06:00", "to": "20:00", "days": [], "tz": None}
    assert [x["type"] for x in made["actions"]] == ["control", "wait", "control", "email"]
    assert ok(a.admin.get(f"{API}/{aid}")) == made
    listed = ok(a.admin.get(API))
    assert listed["totalElements"] == 1 and listed["content"][0]["id"] == aid

    changed = ok(a.admin.put(f"{API}/{aid}", json={**soil(a.device.id, a.device.id), "name": "Soil, renamed"}))
    assert changed["name"] == "Soil, renamed" and changed["updated_at"] != made["updated_at"]
    assert ok(a.admin.post(f"{API}/{aid}/disable"))["enabled"] is False
    assert ok(a.admin.get(f"{API}/{aid}"))["enabled"] is False
    assert ok(a.admin.post(f"{API}/{aid}/enable"))["enabled"] is True
    assert ok(a.admin.delete(f"{API}/{aid}"), 204) is None
    refused(a.admin.get(f"{API}/{aid}"), 404)

    assert audit_actions(a.admin, a.org)[:5] == [
        ("automation.delete", str(aid)),
        ("automation.enable", str(aid)),
        ("automation.disable", str(aid)),
        ("automation.update", str(aid)),
        ("automation.create", str(aid)),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["condition"].update(window={"from": "6:00", "to": "20:00"}), "condition.window.from"),
        (lambda b: b["condition"].update(window={"from": "06:00", "to": "20:00", "tz": "Nowhere/Land"}), "time zone"),
        (lambda b: b["condition"].update(template_id=1), "exactly one of device_id and template_id"),
        (lambda b: b["condition"].update(op="between"), "two numbers"),
        (lambda b: b.update(actions=[]), "actions"),
        (lambda b: b["actions"][0].update(value="on"), "action 1"),
        (lambda b: b["actions"][0].update(pin=9), "action 1: the template has no datastream on V9"),
        (lambda b: b["condition"].update(pin=2), "compares numbers, but datastream V2 holds text"),
        (lambda b: b["actions"][1].update(seconds=86_401), "seconds"),
        (lambda b: b.update(surprise=True), "surprise"),
    ],
)
def test_a_malformed_automation_is_refused_with_the_projects_error_body(
    world: World, change: Any, message: str
) -> None:
    a = world.t.a
    body = soil(a.device.id, a.device.id)
    change(body)
    assert message in refused(a.admin.post(API, json=body), 400)
    assert message in refused(world.bearer.post(f"{V1}/automation/create", json=body), 400)
    assert ok(a.admin.get(API))["totalElements"] == 0


def test_references_outside_the_organization_are_refused_alike(world: World) -> None:
    a, b = world.t.a, world.t.b
    missing = 987_654
    for device, want in ((b.device.id, f"no device {b.device.id} in this organization"), (missing, "no device")):
        assert want in refused(a.admin.post(API, json=soil(device, a.device.id)), 400)
        assert want in refused(a.admin.post(API, json=soil(a.device.id, device)), 400)
    b_user = b.admin.me["id"]
    notify = {**scene(), "actions": [{"type": "notify", "user_ids": [b_user], "title": "Hi"}]}
    assert f"no user {b_user} in this organization" in refused(a.admin.post(API, json=notify), 400)
    assert "no device of this organization carries the tag 'pumps'" in refused(b.admin.post(API, json=scene()), 400)
    log_b = {**scene(), "actions": [{"type": "log_event", "device_id": b.device.id, "code": "overheat"}]}
    assert "no device" in refused(a.admin.post(API, json=log_b), 400)
    unknown_event = {**scene(), "actions": [{"type": "log_event", "device_id": a.device.id, "code": "flood"}]}
    assert "no event 'flood'" in refused(a.admin.post(API, json=unknown_event), 400)
    # B's automation is missing for A, by id, in lists, in the log and on the platform API
    theirs = ok(b.admin.post(API, json=soil(b.device.id, b.device.id)), 201)["id"]
    for call in (
        a.admin.get(f"{API}/{theirs}"),
        a.admin.put(f"{API}/{theirs}", json=soil(a.device.id, a.device.id)),
        a.admin.delete(f"{API}/{theirs}"),
        a.admin.post(f"{API}/{theirs}/disable"),
        a.admin.post(f"{API}/{theirs}/run"),
        world.bearer.post(f"{V1}/automation/run", params={"automationId": theirs}),
        a.admin.get(f"{API}/log", params={"automation_id": theirs}),
        world.bearer.get(f"{V1}/automation", params={"automationId": theirs}),
        world.bearer.delete(f"{V1}/automation", params={"automationId": theirs}),
    ):
        assert refused(call, 404) == "automation not found"
    refused(a.admin.get(API, params={"org_id": b.org}), 404)
    assert ok(a.admin.get(API))["totalElements"] == 0
    assert ok(b.admin.get(f"{API}/{theirs}"))["enabled"] is True


def test_a_webhook_action_names_only_the_organizations_webhooks(world: World) -> None:
    a, b = world.t.a, world.t.b
    with world.acc.db() as db:
        ids = {}
        for child in (a, b):
            row = db.execute(
                "INSERT INTO webhook (org_id, name, trigger_kind, method, url, secret)"
                " VALUES (%s, %s, 'manual', 'POST', 'https://hooks.example/x', 's') RETURNING id",
                (child.org, f"Hook {child.name}"),
            ).fetchone()
            ids[child.name] = row[0]
    try:
        hook = {**scene(), "actions": [{"type": "webhook", "webhook_id": ids["B"]}]}
        assert f"no webhook {ids['B']} in this organization" in refused(a.admin.post(API, json=hook), 400)
        hook["actions"][0]["webhook_id"] = ids["A"]
        assert ok(a.admin.post(API, json=hook), 201)["actions"] == [{"type": "webhook", "webhook_id": ids["A"]}]
    finally:
        with world.acc.db() as db:
            db.execute("DELETE FROM webhook WHERE id = ANY(%s)", (list(ids.values()),))


def test_a_sub_organizations_admin_does_not_see_the_parents_automations(world: World) -> None:
    t = world.t
    parents = ok(t.root.post(API, params={"org_id": t.parent}, json=scene(pump=t.a.device.id)), 201)
    assert parents["org_id"] == t.parent
    assert ok(t.a.admin.get(API))["totalElements"] == 0
    refused(t.a.admin.get(f"{API}/{parents['id']}"), 404)
    refused(t.a.admin.post(API, params={"org_id": t.parent}, json=scene(pump=t.a.device.id)), 404)
    assert ok(world.bearer.get(f"{V1}/automations"))["totalElements"] == 0
    assert [x["id"] for x in ok(t.root.get(API))["content"]] == [parents["id"]]


def test_each_role_may_do_what_its_permissions_say(world: World) -> None:
    a = world.t.a
    aid = ok(a.admin.post(API, json=scene(pump=a.device.id)), 201)["id"]
    for api, role in ((world.staff, "Staff"), (world.user, "User")):
        assert ok(api.get(API))["totalElements"] == 1, role
        assert ok(api.get(f"{API}/{aid}"))["id"] == aid, role
        ok(api.get(f"{API}/log"))
        for call, permission in (
            (api.post(API, json=scene(pump=a.device.id)), "automations.create"),
            (api.put(f"{API}/{aid}", json=scene(pump=a.device.id)), "automations.edit"),
            (api.post(f"{API}/{aid}/disable"), "automations.edit"),
            (api.delete(f"{API}/{aid}"), "automations.delete"),
        ):
            assert permission in refused(call, 403), role
    assert ok(a.admin.get(API))["content"][0]["enabled"] is True


def test_blynks_limits_per_organization_are_settings(world: World) -> None:
    a = world.t.a
    for n in range(LIMIT):
        ok(a.admin.post(API, json=scene(f"Scene {n}", pump=a.device.id)), 201)
    message = refused(a.admin.post(API, json=scene("One more", pump=a.device.id)), 400)
    assert message == f"the organization has the most automations it may have ({LIMIT})"
    assert ok(world.t.b.admin.post(API, json=scene(pump=world.t.b.device.id)), 201)["org_id"] == world.t.b.org
    with world.acc.db() as db:
        db.execute("DELETE FROM automation WHERE org_id = %s", (a.org,))
    long = {**scene(pump=a.device.id), "actions": [{"type": "wait", "seconds": 1}] * (LIMIT + 1)}
    assert refused(a.admin.post(API, json=long), 400) == f"an automation holds at most {LIMIT} actions"
    ok(a.admin.post(API, json={**long, "actions": long["actions"][:LIMIT]}), 201)


def test_only_an_enabled_scene_runs_by_hand(world: World) -> None:
    a = world.t.a
    rule = ok(a.admin.post(API, json=soil(a.device.id, a.device.id)), 201)["id"]
    assert "only a scene runs by hand" in refused(a.admin.post(f"{API}/{rule}/run"), 400)
    off = ok(a.admin.post(API, json=scene("Off", pump=a.device.id, enabled=False)), 201)["id"]
    assert "disabled" in refused(world.bearer.post(f"{V1}/automation/run", params={"automationId": off}), 400)
    assert "automations.execute" in refused(world.user.post(f"{API}/{off}/run"), 403)
    with world.acc.db() as db:
        assert db.execute("SELECT count(*) FROM automation_run").fetchone() == (0,)


def test_a_scene_runs_by_hand_and_its_run_is_in_the_log_and_the_audit(world: World) -> None:
    a = world.t.a
    aid = ok(a.admin.post(API, json=scene("Water now")), 201)["id"]  # the devices tagged "pumps"
    run_id = ok(world.staff.post(f"{API}/{aid}/run"))["run_id"]
    again = ok(world.bearer.post(f"{V1}/automation/run", params={"automationId": aid}))["runId"]
    assert again > run_id

    def finished() -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = ok(a.admin.get(f"{API}/log", params={"automation_id": aid}))["content"]
        return [r for r in runs if r["status"] not in ("running", "waiting")]

    wait_for(lambda: len(finished()) == 2, 10, message="both runs of the scene finished")
    first = next(r for r in finished() if r["id"] == run_id)
    assert first["trigger"] == "scene" and first["automation_name"] == "Water now"
    assert [(s["position"], s["action_type"]) for s in first["steps"]] == [(0, "control")]
    assert first["status"] == "ok" and first["steps"][0]["ok"] is True

    def power() -> Any:
        with world.acc.db() as db:
            sql = "SELECT value FROM datastream_value WHERE device_id = %s AND pin = 1"
            return db.execute(sql, (a.device.id,)).fetchone()

    wait_for(lambda: power() == ("1",), 10, message="the scene set the tagged device's Power to 1")
    assert audit_actions(a.admin, a.org)[:2] == [("automation.run", str(aid)), ("automation.run", str(aid))]


def test_the_platform_api_lists_makes_changes_and_deletes_in_blynks_shape(world: World) -> None:
    a = world.t.a
    made = ok(world.bearer.post(f"{V1}/automation/create", json=soil(a.device.id, a.device.id)), 201)
    assert made["orgId"] == a.org and made["isActive"] is True and made["type"] == "device_state"
    assert made["limitPeriod"] == 0 and isinstance(made["createdAt"], int)
    page = ok(world.bearer.get(f"{V1}/automations", params={"page": 0, "size": 10}))
    assert page == {"content": [made], "totalElements": 1}
    assert ok(world.bearer.get(f"{V1}/automation", params={"automationId": made["id"]})) == made
    body = {**soil(a.device.id, a.device.id), "enabled": False, "limit_period_s": 60}
    changed = ok(world.bearer.put(f"{V1}/automation", params={"automationId": made["id"]}, json=body))
    assert changed["isActive"] is False and changed["limitPeriod"] == 60
    assert ok(a.admin.get(f"{API}/{made['id']}"))["limit_period_s"] == 60
    ok(world.bearer.delete(f"{V1}/automation", params={"automationId": made["id"]}), 204)
    assert ok(world.bearer.get(f"{V1}/automations"))["totalElements"] == 0
    actions = [x for x, i in audit_actions(a.admin, a.org) if i == str(made["id"])]
    assert actions == ["automation.delete", "automation.update", "automation.create"]


def test_a_platform_client_holds_only_the_permissions_it_was_given(world: World) -> None:
    a = world.t.a
    aid = ok(a.admin.post(API, json=scene(pump=a.device.id)), 201)["id"]
    token = _token(world.acc, a.admin, permissions=["automations.view"])
    with httpx.Client(base_url=world.acc.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as viewer:
        assert [x["id"] for x in ok(viewer.get(f"{V1}/automations"))["content"]] == [aid]
        for call, permission in (
            (viewer.post(f"{V1}/automation/create", json=scene(pump=a.device.id)), "automations.create"),
            (viewer.put(f"{V1}/automation", params={"automationId": aid}, json=scene()), "automations.edit"),
            (viewer.delete(f"{V1}/automation", params={"automationId": aid}), "automations.delete"),
            (viewer.post(f"{V1}/automation/run", params={"automationId": aid}), "automations.execute"),
        ):
            assert permission in refused(call, 403)
    assert ok(a.admin.get(API))["totalElements"] == 1


def _run(db: Any, automation: int, org: int, started: datetime, status: str, steps: list[tuple[str, bool, str]]) -> int:
    row = db.execute(
        "INSERT INTO automation_run (automation_id, org_id, trigger, trigger_device_id, trigger_value, started_at,"
        " finished_at, status) VALUES (%s, %s, 'device_state', NULL, '12', %s, %s, %s) RETURNING id",
        (automation, org, started, started + timedelta(seconds=1), status),
    ).fetchone()
    for position, (kind, good, detail) in enumerate(steps):
        db.execute(
            "INSERT INTO automation_step (run_id, position, action_type, ok, detail, started_at, duration_ms)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (row[0], position, kind, good, detail, started, 3 + position),
        )
    return int(row[0])


def test_the_log_pages_runs_newest_first_with_every_actions_outcome(world: World) -> None:
    a, b = world.t.a, world.t.b
    aid = ok(a.admin.post(API, json=soil(a.device.id, a.device.id)), 201)["id"]
    other = ok(b.admin.post(API, json=soil(b.device.id, b.device.id)), 201)["id"]
    now = datetime.now(UTC)
    with world.acc.db() as db:
        first = _run(db, aid, a.org, now - timedelta(hours=2), "ok", [("control", True, ""), ("wait", True, "")])
        failed = _run(
            db,
            aid,
            a.org,
            now - timedelta(hours=1),
            "failed",
            [("control", False, "device offline"), ("email", True, "")],
        )
        _run(db, other, b.org, now, "ok", [("control", True, "")])
    log = ok(a.admin.get(f"{API}/log", params={"size": 1}))
    assert log["totalElements"] == 2 and [r["id"] for r in log["content"]] == [failed]
    run = log["content"][0]
    assert run["status"] == "failed" and run["automation_name"] == "Soil" and run["trigger_value"] == "12"
    assert [(s["action_type"], s["ok"], s["detail"], s["duration_ms"]) for s in run["steps"]] == [
        ("control", False, "device offline", 3),
        ("email", True, "", 4),
    ]
    second = ok(a.admin.get(f"{API}/log", params={"size": 1, "page": 1}))["content"]
    assert [r["id"] for r in second] == [first]
    past = ok(a.admin.get(f"{API}/log", params={"size": 1, "page": 5}))
    assert past["content"] == [] and past["totalElements"] == 2
    by_automation = ok(world.bearer.get(f"{V1}/automation/logs", params={"automationId": aid}))
    assert [r["id"] for r in by_automation["content"]] == [failed, first]


def test_the_log_is_kept_as_long_as_device_logs(world: World) -> None:
    a = world.t.a
    aid = ok(a.admin.post(API, json=soil(a.device.id, a.device.id)), 201)["id"]
    now = datetime.now(UTC)
    with world.acc.db() as db:
        db.execute("UPDATE template SET raw_retention_days = NULL WHERE id = %s", (world.t.template,))
        old = _run(db, aid, a.org, now - timedelta(days=31), "ok", [("control", True, "")])
        kept = _run(db, aid, a.org, now - timedelta(days=29), "ok", [("control", True, "")])
        waiting = _run(db, aid, a.org, now - timedelta(days=40), "waiting", [("control", True, "")])
        by_device = _run(db, aid, a.org, now - timedelta(days=3), "failed", [("control", False, "x")])
        db.execute("UPDATE automation_run SET trigger_device_id = %s WHERE id = %s", (a.device.id, by_device))
        db.execute("UPDATE template SET raw_retention_days = 2 WHERE id = %s", (world.t.template,))

    async def trim() -> int:
        async with AsyncConnectionPool(world.acc.config.database_url, min_size=1, max_size=1, open=False) as pool:
            return await trim_runs(pool, 30)

    try:
        assert asyncio.run(trim()) == 2
    finally:
        with world.acc.db() as db:
            db.execute("UPDATE template SET raw_retention_days = NULL WHERE id = %s", (world.t.template,))
    with world.acc.db() as db:
        left = {r[0] for r in db.execute("SELECT id FROM automation_run").fetchall()}
        steps = db.execute("SELECT count(*) FROM automation_step WHERE run_id = ANY(%s)", ([old, by_device],))
        assert left == {kept, waiting} and steps.fetchone() == (0,)


def test_signed_out_callers_and_other_sites_are_refused(world: World) -> None:
    with world.acc.client() as anon:
        assert anon.get(API).status_code == 401
        assert anon.get(f"{V1}/automations").status_code == 401
    a = world.t.a
    r = a.admin.post(API, json=scene(pump=a.device.id), headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_root_admin_sees_every_tenants_automations(world: World) -> None:
    t = world.t
    mine = ok(t.a.admin.post(API, json=scene(pump=t.a.device.id)), 201)["id"]
    theirs = ok(t.b.admin.post(API, json=scene(pump=t.b.device.id)), 201)["id"]
    root = world.acc.login(*ROOT_ADMIN)
    try:
        assert {x["id"] for x in ok(root.get(API))["content"]} == {mine, theirs}
        assert [x["id"] for x in ok(root.get(API, params={"org_id": t.a.org}))["content"]] == [mine]
    finally:
        root.close()
