"""Integration credentials end to end (issue #14 items 3 and 6): the real broker and app, OAuth
clients made through the API with "may use MQTT", two sibling organizations A and B
(``tests/support/tenants.py``), paho clients logging in as ``integration:<client id>``.

Each organization gets its own namespace; the device feed (``dev/<id>/...``) shows its own
devices and its sub-organizations' (never a parent's or a sibling's); a write (``dev/<id>/set/<name>``) goes through the platform API's checked path and
never reaches B's device; wrong credentials get CONNACK 4 and count toward the login limit; a
revoked client, or one whose "may use MQTT" is switched off, is disconnected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _broker_harness import eventually

from tests.support.accounts import AccountsStack, Api, start_accounts_stack
from tests.support.provision import provision_async, thermostat_doc
from tests.support.tenants import TwoTenants, two_tenants

REFUSED = 0x80
BAD_LOGIN = "Bad user name or password"
LOGIN_LIMIT = 3
THROTTLED_FROM = "127.0.0.3"
RETAINED_LIMIT = 5
"""Retained messages B's namespace may hold (``OPENBLYNK_INTEGRATION_RETAINED_MESSAGES``)."""
_REFUSED_FROM = iter(f"127.0.2.{n}" for n in range(1, 255))


def elsewhere() -> str:
    """A loopback address of its own for one login meant to be refused (refusals count per address)."""
    return next(_REFUSED_FROM)


@dataclass
class World:
    acc: AccountsStack
    t: TwoTenants
    tokens: dict[str, str]
    clients: dict[str, dict[str, Any]]
    """OAuth clients (as made): A and B may use MQTT, A-off may not."""


def make_client(api: Api, name: str, mqtt: bool = True) -> dict[str, Any]:
    r = api.post("/api/oauth2/clients", json={"name": name, "mqtt_enabled": mqtt})
    assert r.status_code == 201, r.text
    assert r.json()["client"]["mqtt_enabled"] is mqtt
    return dict(r.json())


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(
        pg_server,
        template_db,
        "integration",
        auth_failures_per_minute=str(LOGIN_LIMIT),
        integration_retained_messages=str(RETAINED_LIMIT),
    ):
        t = two_tenants(acc)
        tokens = {c.name: c.device.token for c in (t.a, t.b)}
        clients = {
            "A": make_client(t.a.admin, "Node-RED A"),
            "B": make_client(t.b.admin, "Home Assistant B"),
            "A-off": make_client(t.a.admin, "API only", mqtt=False),
        }
        yield World(acc, t, tokens, clients)
        t.close()


def login(world: World, name: str) -> tuple[str, str]:
    made = world.clients[name]
    return "integration:" + made["client"]["client_id"], made["client_secret"]


def value_of(api: Api, device_id: int, pin: int) -> str | None:
    r = api.get(f"/api/console/devices/{device_id}/values")
    assert r.status_code == 200, r.text
    return next((v["value"] for v in r.json()["values"] if v["pin"] == pin), None)


async def test_each_organization_has_its_own_namespace_and_feed(world: World, connect: Any) -> None:
    a, b = world.t.a, world.t.b
    ia = await connect(*login(world, "A"), client_id="node-red")
    ib = await connect(*login(world, "B"), client_id="home-assistant")
    assert await ia.subscribe("dev/#", "flows/#", qos=1) == [1, 1]
    assert await ib.subscribe("#", qos=1) == [1]
    assert await ib.subscribe(f"dev/{a.device.id}/#", "$SYS/#", "dev/nosubscribe", qos=1) == [1, REFUSED, REFUSED]
    device = await connect("device", world.tokens["A"], client_id="thermostat-a")
    assert await device.subscribe("downlink/#", qos=1) == [1]
    await device.publish("ds/Temperature", "22.5", qos=1)
    got = await ia.received(f"dev/{a.device.id}/ds/Temperature", 10)
    assert got.payload == b"22.5"
    await ia.received(f"dev/{a.device.id}/online", 10)
    await ia.publish("flows/state", "A only", qos=1, retain=True)
    await ia.received("flows/state")
    # a write through the checked path: stored, sent to the device, for A's device only
    await ia.publish(f"dev/{a.device.id}/set/Power", "1", qos=1)
    assert (await device.received("downlink/ds/Power", 10)).payload == b"1"
    await eventually(lambda: value_of(a.admin, a.device.id, 1) == "1", 10, message="A's write stored")
    await ia.publish(f"dev/{b.device.id}/set/Power", "1", qos=1)  # B's device: out of A's scope
    await ib.publish(f"dev/{a.device.id}/set/Power", "0", qos=1)  # and A's out of B's
    await ia.publish(f"dev/{a.device.id}/set/Power", "0", qos=1)  # a marker: writes are applied in order
    await eventually(lambda: value_of(a.admin, a.device.id, 1) == "0", 10, message="A's second write")
    assert value_of(b.admin, b.device.id, 1) is None
    assert [m.payload for m in device.messages if m.topic == "downlink/ds/Power"] == [b"1", b"0"]
    await ib.subscribe("marker", qos=1)
    await ib.publish("marker", "B", qos=1)
    await ib.received("marker")
    assert ib.topics() == ["marker"]  # nothing of A: not its feed, not its retained flows, not its writes


async def test_credentials_decide_the_login_kind(world: World, connect: Any) -> None:
    client_id, secret = world.clients["A"]["client"]["client_id"], world.clients["A"]["client_secret"]
    gateway = await connect(client_id, secret, client_id="as-gateway")  # the same credentials, no prefix
    assert await gateway.subscribe("flows/#", qos=1) == [REFUSED]
    off_user, off_secret = login(world, "A-off")
    await connect(off_user, off_secret, expect=BAD_LOGIN, client_id="off", bind=elsewhere())


async def test_switching_mqtt_off_or_revoking_disconnects(world: World, connect: Any) -> None:
    admin = world.t.a.admin
    made = make_client(admin, "Short-lived")
    creds = ("integration:" + made["client"]["client_id"], made["client_secret"])
    first = await connect(*creds, client_id="short")
    r = admin.put(f"/api/oauth2/clients/{made['client']['id']}/mqtt", json={"mqtt_enabled": False})
    assert r.status_code == 200 and r.json()["mqtt_enabled"] is False, r.text
    await eventually(lambda: first.disconnected, 10, message="switched off: disconnected")
    await connect(*creds, expect=BAD_LOGIN, client_id="short-off", bind=elsewhere())
    r = admin.put(f"/api/oauth2/clients/{made['client']['id']}/mqtt", json={"mqtt_enabled": True})
    assert r.status_code == 200, r.text
    second = await connect(*creds, client_id="short-on")
    r = admin.delete(f"/api/oauth2/clients/{made['client']['id']}")
    assert r.status_code == 200, r.text
    await eventually(lambda: second.disconnected, 10, message="revoked: disconnected")
    await connect(*creds, expect=BAD_LOGIN, client_id="short-revoked", bind=elsewhere())


async def test_wrong_credentials_get_connack_4_and_count_toward_the_login_limit(world: World, connect: Any) -> None:
    user, secret = login(world, "A")
    wrong = [(user, "not-the-secret"), ("integration:oa2-nobody", secret), ("integration:", secret)]
    assert len(wrong) == LOGIN_LIMIT
    refused = [await connect(u, p, expect=BAD_LOGIN, bind=THROTTLED_FROM) for u, p in wrong]
    throttled = await connect(user, secret, expect=BAD_LOGIN, bind=THROTTLED_FROM)  # not even asked
    other = await connect(user, secret, client_id="elsewhere")
    assert [c.connack for c in [*refused, throttled]] == [BAD_LOGIN] * (LOGIN_LIMIT + 1)
    assert other.connack == "Success"


async def test_a_device_made_later_joins_the_feed_when_it_comes_online(world: World, connect: Any) -> None:
    doc = thermostat_doc(devices=1)
    doc["templates"] = []  # the world's template
    doc["devices"] = [{**d, "template": world.t.a.device.template} for d in doc["devices"]]
    made = (await provision_async(world.acc.config.database_url, doc)).devices[0]
    with world.acc.db() as db:  # into A without a change notice, as a new device arrives
        db.execute("UPDATE device SET org_id = %s WHERE id = %s", (world.t.a.org, made.id))
    ia = await connect(*login(world, "A"), client_id="node-red-new")
    assert await ia.subscribe(f"dev/{made.id}/#", qos=1) == [1]
    device = await connect("device", made.token, client_id="new-thermostat")
    assert (await ia.received(f"dev/{made.id}/online", 10)).payload == b"1"
    await device.publish("ds/Temperature", "19.5", qos=1)
    assert (await ia.received(f"dev/{made.id}/ds/Temperature", 10)).payload == b"19.5"


async def _publish_until_fed(device: Any, watcher: Any, topic: str, value: str) -> None:
    """Publish ``value`` until ``watcher`` gets it on ``topic`` (the feed reloads after a change notice)."""
    for _ in range(40):
        await device.publish("ds/Temperature", value, qos=1)
        if topic in watcher.topics():
            return
        await asyncio.sleep(0.25)
    await watcher.received(topic, 5)


async def test_a_parents_integration_sees_its_sub_organizations_devices_never_the_reverse(
    world: World, connect: Any
) -> None:
    t = world.t
    doc = thermostat_doc(devices=1)
    doc["templates"] = []
    doc["devices"] = [{**d, "template": t.a.device.template} for d in doc["devices"]]
    own = (await provision_async(world.acc.config.database_url, doc)).devices[0]
    r = t.root.post(f"/api/devices/{own.id}/move", json={"org_id": t.parent})  # a device of the parent itself
    assert r.status_code == 200, r.text
    r = t.root.post("/api/oauth2/clients", json={"name": "Parent's Node-RED", "mqtt_enabled": True, "org_id": t.parent})
    assert r.status_code == 201, r.text
    parent_login = ("integration:" + r.json()["client"]["client_id"], r.json()["client_secret"])
    ip = await connect(*parent_login, client_id="parent-node-red")
    ia = await connect(*login(world, "A"), client_id="node-red-a-scope")
    ib = await connect(*login(world, "B"), client_id="home-assistant-b-scope")
    for client in (ip, ia, ib):
        assert await client.subscribe("dev/#", qos=1) == [1]
    devices = {
        "P": await connect("device", own.token, client_id="parent-thermostat"),
        "A": await connect("device", world.tokens["A"], client_id="thermostat-a-scope"),
        "B": await connect("device", world.tokens["B"], client_id="thermostat-b-scope"),
    }
    ids = {"P": own.id, "A": t.a.device.id, "B": t.b.device.id}
    for name in ("P", "A", "B"):  # the parent's integration sees its own device and both children's
        await _publish_until_fed(devices[name], ip, f"dev/{ids[name]}/ds/Temperature", "18.5")
    for name, watcher in (("A", ia), ("B", ib)):  # a marker, after everything above was fed
        await devices[name].publish("ds/Temperature", "30.5", qos=1)
        await eventually(
            lambda w=watcher, n=name: any(
                m.topic == f"dev/{ids[n]}/ds/Temperature" and m.payload == b"30.5" for m in list(w.messages)
            ),
            10,
            message=f"{name}'s marker",
        )
    for name, watcher in (("A", ia), ("B", ib)):  # a child's integration: its own device only
        assert {topic.split("/")[1] for topic in watcher.topics()} == {str(ids[name])}, watcher.topics()


def sessions_of(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/api/integrations/sessions", params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_the_console_lists_each_organizations_sessions_and_disconnects_one(world: World, connect: Any) -> None:
    t = world.t
    a_client, b_client = world.clients["A"]["client"], world.clients["B"]["client"]
    gateway = await connect(a_client["client_id"], world.clients["A"]["client_secret"], client_id="site-bridge-a")
    await gateway.publish(f"dev/{world.tokens['A']}/ds/Temperature", "20.5", qos=1)
    integration = await connect(*login(world, "B"), client_id="home-assistant-listed")
    assert await integration.subscribe("flows/#", "dev/#", qos=1) == [1, 1]
    await eventually(
        lambda: [s["client_id"] for s in sessions_of(t.a.admin)] == ["site-bridge-a"], 10, message="A's gateway listed"
    )
    mine = sessions_of(t.a.admin)[0]
    assert (mine["kind"], mine["org_id"], mine["login"], mine["credentials"]) == (
        "gateway",
        t.a.org,
        a_client["client_id"],
        "Node-RED A",
    )
    assert mine["address"] == "127.0.0.1" and mine["devices"] == 1 and mine["msgs_in"] == 1
    theirs = sessions_of(t.b.admin)
    assert [(s["client_id"], s["kind"], s["login"], s["subscriptions"]) for s in theirs] == [
        ("home-assistant-listed", "integration", "integration:" + b_client["client_id"], 2)
    ]
    everyone = {s["client_id"] for s in sessions_of(t.root)}  # the root organization sees those below it
    assert everyone >= {"site-bridge-a", "home-assistant-listed"}
    assert [s["client_id"] for s in sessions_of(t.root, org_id=t.b.org)] == ["home-assistant-listed"]
    assert t.a.admin.get("/api/integrations/sessions", params={"org_id": t.b.org}).status_code == 404
    # B cannot end A's session (the same answer as for none), A can; the credentials still work
    assert t.b.admin.post(f"/api/integrations/sessions/{mine['id']}/disconnect").status_code == 404
    assert not gateway.disconnected
    r = t.a.admin.post(f"/api/integrations/sessions/{mine['id']}/disconnect")
    assert r.status_code == 200 and r.json()["client_id"] == "site-bridge-a", r.text
    await eventually(lambda: gateway.disconnected, 10, message="disconnected")
    assert t.a.admin.post(f"/api/integrations/sessions/{mine['id']}/disconnect").status_code == 404
    assert not integration.disconnected
    audit = t.a.admin.get("/api/audit", params={"action": "mqtt_session.disconnect"}).json()
    assert any(e["target_id"] == mine["id"] for e in audit["content"]), audit
    await connect(a_client["client_id"], world.clients["A"]["client_secret"], client_id="site-bridge-a")


async def test_the_retained_cap_of_a_namespace_is_the_setting(world: World, connect: Any) -> None:
    writer = await connect(*login(world, "B"), client_id="retain-writer")
    for n in range(RETAINED_LIMIT + 1):  # B's namespace holds no retained message before this test
        await writer.publish(f"kept/{n}", str(n), qos=1, retain=True)
    reader = await connect(*login(world, "B"), client_id="retain-reader")
    assert await reader.subscribe("kept/#", qos=1) == [1]
    await reader.publish("kept/end", "", qos=1)  # not retained: after everything retained
    await reader.received("kept/end")
    assert [m.topic for m in reader.messages if m.retain] == [f"kept/{n}" for n in range(RETAINED_LIMIT)]
