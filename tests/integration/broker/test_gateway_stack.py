"""Blynk's MQTT Gateway API end to end (issue #14 items 1 and 6): the real broker and app, OAuth
clients made through the API, two sibling organizations A and B under a parent P
(``tests/support/tenants.py``), paho gateways.

A gateway of A can never read, write, retain into or will into a device of B; a parent's
client reaches its children's devices; ``mgmt_device`` works only with a template that has
"Enable for Gateway API"; a revoked client is disconnected; wrong credentials get CONNACK 4
and count toward the per-address login limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from _broker_harness import eventually

from tests.support.accounts import ADMIN, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.provision import provision_async, thermostat_doc
from tests.support.tenants import TwoTenants, two_tenants

REFUSED = 0x80
BAD_LOGIN = "Bad user name or password"
LOGIN_LIMIT = 3
THROTTLED_FROM = "127.0.0.2"
"""The wrong-credentials test logs in from here, so its throttling touches no other test."""
_REFUSED_FROM = iter(f"127.0.1.{n}" for n in range(1, 255))


def elsewhere() -> str:
    """A loopback address of its own for one login that is meant to be refused: refusals count
    per address, and the tests' other logins come from 127.0.0.1."""
    return next(_REFUSED_FROM)


@dataclass
class World:
    acc: AccountsStack
    t: TwoTenants
    tokens: dict[str, str]
    """Device token of A's and of B's device."""
    clients: dict[str, dict[str, Any]]
    """OAuth clients (as made: ``client``, ``client_secret``) of A, B and P."""
    parent_admin: Api


def make_client(api: Api, name: str) -> dict[str, Any]:
    r = api.post("/api/oauth2/clients", json={"name": name})
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(pg_server, template_db, "gateway", auth_failures_per_minute=str(LOGIN_LIMIT)):
        t = two_tenants(acc)
        tokens = {c.name: c.device.token for c in (t.a, t.b)}
        parent_admin = invite_and_join(acc, t.root, t.parent, "admin-p@example.com", ADMIN)
        clients = {"A": make_client(t.a.admin, "Bridge A"), "B": make_client(t.b.admin, "Bridge B")}
        clients["P"] = make_client(parent_admin, "Bridge P")
        yield World(acc, t, tokens, clients, parent_admin)
        parent_admin.close()
        t.close()


def creds(world: World, org: str) -> tuple[str, str]:
    made = world.clients[org]
    return made["client"]["client_id"], made["client_secret"]


def values(api: Api, device_id: int) -> dict[str, Any]:
    r = api.get(f"/api/console/devices/{device_id}/values")
    assert r.status_code == 200, r.text
    return dict(r.json())


def value_of(api: Api, device_id: int, pin: int) -> str | None:
    return next((v["value"] for v in values(api, device_id)["values"] if v["pin"] == pin), None)


async def test_a_gateway_of_a_reaches_a_and_never_b(world: World, connect: Any) -> None:
    a, b = world.t.a, world.t.b
    gw = await connect(*creds(world, "A"), client_id="site-a")
    codes = await gw.subscribe(
        f"dev/{world.tokens['A']}/downlink/#",
        f"dev/{world.tokens['B']}/downlink/#",
        f"dev/{world.tokens['B']}/#",
        "dev/+/downlink/#",
        "dev/#",
        "#",
        f"d/{b.device.id}/#",
        qos=1,
    )
    assert codes == [1] + [REFUSED] * 6
    await gw.publish(f"dev/{world.tokens['B']}/ds/Temperature", "66", qos=1, retain=True)
    diag = await gw.received(f"dev/{world.tokens['B']}/downlink/diag")
    assert b"no device with this token" in diag.payload
    await gw.publish(f"dev/{world.tokens['A']}/ds/Temperature", "21.5", qos=1)
    await eventually(lambda: value_of(a.admin, a.device.id, 0) == "21.5", 10, message="A's value stored")
    await eventually(lambda: values(a.admin, a.device.id)["online"], 10, message="A's device online")
    assert value_of(b.admin, b.device.id, 0) is None and not values(b.admin, b.device.id)["online"]
    r = a.admin.post(f"/api/console/devices/{a.device.id}/values/1", json={"value": "1"})
    assert r.status_code == 200, r.text
    assert (await gw.received(f"dev/{world.tokens['A']}/downlink/ds/Power", 10)).payload == b"1"
    r = b.admin.post(f"/api/console/devices/{b.device.id}/values/1", json={"value": "1"})
    assert r.status_code == 200, r.text
    await gw.publish(f"dev/{world.tokens['A']}/get/ds", "Power", qos=1)  # answered after B's downlink
    await eventually(lambda: len([t for t in gw.topics() if t.endswith("/downlink/ds/Power")]) == 2, 10)
    assert not any(world.tokens["B"] in t and "diag" not in t for t in gw.topics())
    await gw.close()
    await eventually(lambda: not values(a.admin, a.device.id)["online"], 10, message="offline with its gateway")


async def test_a_gateway_of_a_cannot_will_or_retain_into_b(world: World, connect: Any) -> None:
    b = world.t.b
    will = (f"dev/{world.tokens['B']}/ds/Label", b"from A")
    gw = await connect(*creds(world, "A"), client_id="site-a-will", will=will)
    await gw.publish(f"dev/{world.tokens['B']}/ds/Label", "retained by A", qos=1, retain=True)
    gw.client._sock.close()  # type: ignore[union-attr]  # connection lost: a will would be published now
    watcher = await connect(*creds(world, "B"), client_id="site-b")
    assert await watcher.subscribe(f"dev/{world.tokens['B']}/downlink/#", qos=1) == [1]
    await watcher.publish(f"dev/{world.tokens['B']}/ds/Temperature", "7.5", qos=1)  # B's own gateway works
    await eventually(lambda: value_of(b.admin, b.device.id, 0) == "7.5", 10, message="B's value stored")
    assert value_of(b.admin, b.device.id, 2) != "from A" and value_of(b.admin, b.device.id, 2) != "retained by A"
    assert not any("Label" in t for t in watcher.topics())


async def test_a_parents_client_reaches_its_childrens_devices(world: World, connect: Any) -> None:
    gw = await connect(*creds(world, "P"), client_id="site-p")
    codes = await gw.subscribe(f"dev/{world.tokens['A']}/downlink/#", f"dev/{world.tokens['B']}/downlink/#", qos=1)
    assert codes == [1, 1]
    child = await connect(*creds(world, "B"), client_id="site-b2")
    assert await child.subscribe(f"dev/{world.tokens['A']}/downlink/#", qos=1) == [REFUSED]


async def test_mgmt_device_needs_the_templates_gateway_switch(world: World, connect: Any) -> None:
    a, b = world.t.a, world.t.b
    await connect("mgmt_device", world.tokens["A"], expect=BAD_LOGIN, client_id="mgmt-off", bind=elsewhere())
    root = world.t.root
    template = root.get(f"/api/console/templates/{world.t.template}").json()
    r = root.patch(
        f"/api/console/templates/{world.t.template}", json={"name": template["name"], "gateway_enabled": True}
    )
    assert r.status_code == 200, r.text
    assert root.get(f"/api/console/templates/{world.t.template}").json()["gateway_enabled"] is True
    gw = await connect("mgmt_device", world.tokens["A"], client_id="mgmt-on")
    codes = await gw.subscribe(f"dev/{world.tokens['A']}/downlink/#", f"dev/{world.tokens['B']}/downlink/#", qos=1)
    assert codes == [1, REFUSED]
    await gw.publish(f"dev/{world.tokens['A']}/ds/Label", "via mgmt", qos=1)
    await eventually(lambda: value_of(a.admin, a.device.id, 2) == "via mgmt", 10, message="A's value stored")
    await gw.publish(f"dev/{world.tokens['B']}/ds/Label", "via mgmt", qos=1)
    await gw.received(f"dev/{world.tokens['B']}/downlink/diag")
    listed = [s for s in a.admin.get("/api/integrations/sessions").json() if s["client_id"] == "mgmt-on"]
    assert [(s["kind"], s["login"], s["credentials"], s["org_id"]) for s in listed] == [
        ("gateway", "mgmt_device", a.device.name, a.org)  # named by the device whose token it used
    ]
    assert "mgmt-on" not in b.admin.get("/api/integrations/sessions").text
    assert value_of(b.admin, b.device.id, 2) != "via mgmt"
    r = root.patch(
        f"/api/console/templates/{world.t.template}", json={"name": template["name"], "gateway_enabled": False}
    )
    assert r.status_code == 200, r.text
    await eventually(lambda: gw.disconnected, 10, message="the switch turned off ends the gateway")
    await connect("mgmt_device", world.tokens["A"], expect=BAD_LOGIN, client_id="mgmt-off-again", bind=elsewhere())


async def test_a_revoked_client_is_disconnected_and_refused(world: World, connect: Any) -> None:
    made = make_client(world.t.a.admin, "Short-lived")
    login = (made["client"]["client_id"], made["client_secret"])
    gw = await connect(*login, client_id="short")
    r = world.t.a.admin.delete(f"/api/oauth2/clients/{made['client']['id']}")
    assert r.status_code == 200, r.text
    await eventually(lambda: gw.disconnected, 5, message="revoked client disconnected")
    await connect(*login, expect=BAD_LOGIN, client_id="short-again", bind=elsewhere())


async def test_wrong_credentials_get_connack_4_and_count_toward_the_login_limit(world: World, connect: Any) -> None:
    client_id, secret = creds(world, "A")
    wrong = [(client_id, "not-the-secret"), ("mgmt_device", "x" * 32), ("oa2-client-id_nobody", secret)]
    assert len(wrong) == LOGIN_LIMIT
    refused = [await connect(u, p, expect=BAD_LOGIN, bind=THROTTLED_FROM) for u, p in wrong]
    throttled = await connect(client_id, secret, expect=BAD_LOGIN, bind=THROTTLED_FROM)  # not even asked
    elsewhere = await connect(client_id, secret, client_id="elsewhere")  # another address is not throttled
    assert [c.connack for c in [*refused, throttled]] == [BAD_LOGIN] * (LOGIN_LIMIT + 1)
    assert elsewhere.connack == "Success"


async def test_a_device_deleted_or_moved_away_leaves_the_gateway(world: World, connect: Any) -> None:
    root, a = world.t.root, world.t.a
    doc = thermostat_doc(devices=2)
    doc["templates"] = []  # the devices use the shared template of the world
    doc["devices"] = [{**d, "template": world.t.a.device.template} for d in doc["devices"]]
    deleted, moved = (await provision_async(world.acc.config.database_url, doc)).devices
    for device in (deleted, moved):
        r = root.post(f"/api/devices/{device.id}/move", json={"org_id": a.org})
        assert r.status_code == 200, r.text
    gw = await connect(*creds(world, "A"), client_id="site-a-leaving")
    assert await gw.subscribe(f"dev/{deleted.token}/downlink/#", f"dev/{moved.token}/downlink/#", qos=1) == [1, 1]
    for device in (deleted, moved):
        await gw.publish(f"dev/{device.token}/ds/Label", "here", qos=1)
        await eventually(lambda d=device: values(a.admin, d.id)["online"], 10, message="online through the gateway")
    client_id, secret = creds(world, "A")
    base = world.acc.base_url
    r = httpx.post(f"{base}/oauth2/token", params={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert r.status_code == 200, r.text
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = httpx.delete(f"{base}/api/v1/organization/device", params={"deviceId": deleted.id}, headers=bearer)
    assert r.status_code == 204, r.text
    r = root.post(f"/api/devices/{moved.id}/move", json={"org_id": world.t.b.org})
    assert r.status_code == 200, r.text
    await eventually(lambda: not values(world.t.b.admin, moved.id)["online"], 10, message="moved away: offline")
    for device in (deleted, moved):
        await gw.publish(f"dev/{device.token}/ds/Label", "gone", qos=1)
        diag = await gw.received(f"dev/{device.token}/downlink/diag", 10)
        assert b"no device with this token" in diag.payload
    r = world.t.b.admin.post(f"/api/console/devices/{moved.id}/values/1", json={"value": "1"})
    assert r.status_code == 200, r.text
    await gw.publish(f"dev/{world.tokens['A']}/ds/Label", "marker", qos=1)
    await eventually(lambda: value_of(a.admin, a.device.id, 2) == "marker", 10, message="a later value of A stored")
    assert value_of(world.t.b.admin, moved.id, 2) == "here"  # "gone" never reached it
    assert f"dev/{moved.token}/downlink/ds/Power" not in gw.topics()  # B's downlink never came to A
