"""Blynk.Inject's static tokens end to end (issue #17 item 1), with the real app, PostgreSQL,
broker and paho devices: a manufacturer M makes static tokens (generated, and imported from a
CSV whose column goes to a metadata field) and exports them; a device flashed with one connects
before anyone claims it and is M's, unclaimed; a user of another organization C claims it with
its code and it is online in C with that user as owner; unclaiming and deleting give it back.
Abuse: a replayed code, wrong codes (rate limited), a leaked device token used as a code, a code
of another template aimed at someone else's device, another tenant reading M's tokens."""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

import device_sdk
from backend.inject.windows import claim_proof
from backend.transfer.schemas import DeviceOut
from device_sdk import Device
from tests.support.accounts import ADMIN, ROOT_ADMIN, USER, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice

V1 = "/api/v1/organization"
WRONG_LIMIT = 4


@dataclass
class World:
    acc: AccountsStack
    maker: Api  # M's administrator
    maker_org: int
    template: int
    other_template: int
    customer: Api  # a plain user (role User) of C
    customer_org: int
    stranger: Api  # a plain user of X
    stranger_org: int
    x_admin: Api
    maker_bearer: httpx.Client
    x_bearer: httpx.Client


def _ok(r: httpx.Response, status: int) -> Any:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def _bearer(acc: AccountsStack, admin: Api, name: str) -> httpx.Client:
    made = _ok(admin.post("/api/oauth2/clients", json={"name": name}), 201)
    r = httpx.post(
        f"{acc.base_url}/oauth2/token",
        params={"grant_type": "client_credentials"},
        auth=(made["client"]["client_id"], made["client_secret"]),
    )
    token = _ok(r, 200)["access_token"]
    return httpx.Client(base_url=acc.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def _template(admin: Api, name: str) -> int:
    tid = int(_ok(admin.post("/api/console/templates", json={"name": name}), 201)["id"])
    ds = {"pin": "V0", "name": "Temperature", "type": "double", "min": -40, "max": 85}
    _ok(admin.post(f"/api/console/templates/{tid}/datastreams", json=ds), 200)
    _ok(admin.post(f"/api/console/templates/{tid}/metadata", json={"name": "Serial", "type": "text"}), 200)
    return tid


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    settings = {"claim_failures_per_user": str(WRONG_LIMIT), "claim_failures_per_address": "1000"}
    for acc in start_accounts_stack(pg_server, template_db, "inject", **settings):
        root = acc.login(*ROOT_ADMIN)
        orgs = {n: _ok(root.post("/api/orgs", json={"name": n}), 201)["id"] for n in ("Maker", "Customer", "X")}
        maker = invite_and_join(acc, root, orgs["Maker"], "maker@example.com", ADMIN)
        customer = invite_and_join(acc, root, orgs["Customer"], "customer@example.com", USER)
        stranger = invite_and_join(acc, root, orgs["X"], "stranger@example.com", USER)
        x_admin = invite_and_join(acc, root, orgs["X"], "x-admin@example.com", ADMIN)
        w = World(
            acc,
            maker,
            orgs["Maker"],
            _template(maker, "Lamp"),
            _template(maker, "Fan"),
            customer,
            orgs["Customer"],
            stranger,
            orgs["X"],
            x_admin,
            _bearer(acc, maker, "factory"),
            _bearer(acc, x_admin, "x app"),
        )
        yield w
        for c in (root, maker, customer, stranger, x_admin, w.maker_bearer, w.x_bearer):
            c.close()


def _export(w: World, template: int) -> list[dict[str, str]]:
    text = _ok(w.maker.get("/api/inject/static-tokens/export.csv", params={"template_id": template}), 200)
    return list(csv.DictReader(io.StringIO(text)))


def _device(w: World, token: str) -> dict[str, Any] | None:
    with w.acc.db() as db:
        row = db.execute(
            "SELECT d.id, d.org_id, d.owner_id, d.online, d.name FROM device d JOIN static_token s "
            "ON s.device_id = d.id WHERE s.token_hmac = d.token_hmac AND s.id = %s",
            (int(token),),
        ).fetchone()
    return None if row is None else dict(zip(("id", "org_id", "owner_id", "online", "name"), row, strict=True))


def _flashed(token: str) -> DeviceOut:
    return DeviceOut(name="flashed", id=0, token=token, template="Lamp", template_id="", created=False)


def test_a_static_token_device_connects_unclaimed_then_a_customer_claims_it(
    world: World, paho_device: ConnectDevice
) -> None:
    w = world
    made = _ok(
        w.maker.post(
            "/api/inject/static-tokens/import",
            json={
                "template_id": w.template,
                "csv": "serial,colour\nSN-0001,red\nSN-0002,blue\n",
                "mapping": {"serial": "Serial"},
            },
        ),
        201,
    )
    assert made["created"] == 2
    rows = {r["id"]: r for r in _export(w, w.template)}
    first = rows[str(made["ids"][0])]
    assert first["Serial"] == "SN-0001" and first["claim_code"].startswith("sqr_") and first["status"] == "UNCLAIMED"
    assert len(first["auth_token"]) == 32 and first["auth_token"] != first["claim_code"]

    # flashed and switched on before anyone claims it: M's device, unclaimed, no owner
    device = paho_device(w.acc.config, _flashed(first["auth_token"]))
    found = wait_for(lambda: (d := _device(w, first["id"])) and d["online"] and d, message="the device online")
    assert (found["org_id"], found["owner_id"]) == (w.maker_org, None)
    listed = _ok(w.maker.get("/api/inject/static-tokens", params={"template_id": w.template}), 200)
    mine = next(t for t in listed["content"] if t["id"] == int(first["id"]))
    assert (mine["status"], mine["device_id"], mine["meta"]) == ("UNCLAIMED", found["id"], {"Serial": "SN-0001"})
    with w.acc.db() as db:
        meta = db.execute("SELECT value FROM device_meta WHERE device_id = %s AND name = 'Serial'", (found["id"],))
        assert meta.fetchone() == ("SN-0001",)
    device.publish("ds/Temperature", "21.5", qos=1)

    # the customer (role User, another organization) claims it with the code from the label
    claimed = _ok(w.customer.post("/api/inject/claim", json={"code": first["claim_code"], "name": "Hall lamp"}), 201)
    me = w.customer.me["id"]
    assert claimed == {
        "device_id": found["id"],
        "org_id": w.customer_org,
        "owner_id": me,
        "name": "Hall lamp",
        "template_id": w.template,
    }
    seen = _ok(w.customer.get(f"/api/devices/{found['id']}"), 200)
    assert (seen["org_id"], seen["name"]) == (w.customer_org, "Hall lamp")
    # still the same connection, now reporting in the customer's organization
    device.publish("ds/Temperature", "22.5", qos=1)
    wait_for(
        lambda: (
            (d := _device(w, first["id"])) and d["online"] and d["org_id"] == w.customer_org and d["owner_id"] == me
        ),
        message="online in the customer's organization",
    )
    wait_for(
        lambda: "22.5" in _ok(w.customer.get(f"/api/console/devices/{found['id']}/values"), 200).__repr__(),
        message="the customer reading the value the device sent after the claim",
    )
    # M no longer sees it among its devices; its static token says who claimed it
    _ok(w.maker.get(f"/api/devices/{found['id']}"), 404)
    listed = _ok(w.maker.get("/api/inject/static-tokens", params={"template_id": w.template}), 200)
    mine = next(t for t in listed["content"] if t["id"] == int(first["id"]))
    assert (mine["status"], mine["claimed_org_id"], mine["owner_id"]) == ("CLAIMED", w.customer_org, me)

    # a replayed code claims nothing
    r = w.stranger.post("/api/inject/claim", json={"code": first["claim_code"]})
    assert r.status_code == 409, r.text
    assert _device(w, first["id"])["org_id"] == w.customer_org  # type: ignore[index]

    # unclaimed: back to M, unclaimed, its owner's values erased; the code claims once more
    def stored() -> bool:  # the latest value written through (the writer coalesces)
        with w.acc.db() as db:
            got = db.execute("SELECT value FROM datastream_value WHERE device_id = %s", (found["id"],)).fetchall()
        return got == [("22.5",)]

    wait_for(stored, message="the latest value stored")
    _ok(w.customer.post(f"/api/inject/devices/{found['id']}/unclaim"), 204)
    back = _device(w, first["id"])
    assert back is not None and (back["org_id"], back["owner_id"]) == (w.maker_org, None)
    with w.acc.db() as db:
        left = db.execute("SELECT pin, value FROM datastream_value WHERE device_id = %s", (found["id"],)).fetchall()
        assert left == [], left
    assert "22.5" not in repr(_ok(w.maker.get(f"/api/console/devices/{found['id']}/values"), 200))
    again = _ok(w.stranger.post("/api/inject/claim", json={"code": first["claim_code"]}), 201)
    assert (again["org_id"], again["owner_id"]) == (w.stranger_org, w.stranger.me["id"])

    # deleting it (platform API of X) gives it back too: connecting again, it is M's, unclaimed
    device.close()
    _ok(w.x_bearer.delete(f"{V1}/device", params={"deviceId": found["id"]}), 204)
    paho_device(w.acc.config, _flashed(first["auth_token"]))
    reborn = wait_for(lambda: (d := _device(w, first["id"])) and d["online"] and d, message="the device back")
    assert (reborn["org_id"], reborn["owner_id"]) == (w.maker_org, None)
    assert reborn["id"] != found["id"]
    with w.acc.db() as db:
        actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]
    for action in ("static_token.generate", "static_token.export", "device.activate", "device.claim", "device.unclaim"):
        assert action in actions, action


def test_claim_codes_resist_guessing_leaked_tokens_and_other_templates(world: World) -> None:
    w = world
    lamps = _ok(w.maker.post("/api/inject/static-tokens/generate", json={"template_id": w.template, "count": 1}), 201)
    fans = _ok(
        w.maker.post("/api/inject/static-tokens/generate", json={"template_id": w.other_template, "count": 1}), 201
    )
    lamp = next(r for r in _export(w, w.template) if r["id"] == str(lamps["ids"][0]))
    fan = next(r for r in _export(w, w.other_template) if r["id"] == str(fans["ids"][0]))
    # the customer claims the lamp; then, with a fan's code, aims at the lamp: the body takes no
    # device, and the fan's code claims the fan alone
    lamp_id = _ok(w.customer.post("/api/inject/claim", json={"code": lamp["claim_code"]}), 201)["device_id"]
    r = w.stranger.post("/api/inject/claim", json={"code": fan["claim_code"], "device_id": lamp_id})
    assert r.status_code == 400, r.text
    got = _ok(w.stranger.post("/api/inject/claim", json={"code": fan["claim_code"]}), 201)
    assert got["template_id"] == w.other_template and got["device_id"] != lamp_id
    assert _ok(w.customer.get(f"/api/devices/{lamp_id}"), 200)["org_id"] == w.customer_org
    # the stranger cannot give back (or see) the customer's device
    _ok(w.stranger.post(f"/api/inject/devices/{lamp_id}/unclaim"), 404)

    # a leaked auth token is no claim code; wrong codes count, and past the limit even a right
    # code is refused (429 with Retry-After)
    fresh = _ok(w.maker.post("/api/inject/static-tokens/generate", json={"template_id": w.template, "count": 1}), 201)
    spare = next(r for r in _export(w, w.template) if r["id"] == str(fresh["ids"][0]))
    guesser = w.x_admin
    wrong = [spare["auth_token"], "sqr_" + "A" * 28, "sqr_" + "B" * 28, "not a code"]
    assert len(wrong) == WRONG_LIMIT
    for code in wrong:
        r = guesser.post("/api/inject/claim", json={"code": code})
        assert r.status_code == 404, r.text
    r = guesser.post("/api/inject/claim", json={"code": spare["claim_code"]})
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) > 0
    with w.acc.db() as db:
        row = db.execute("SELECT claimed_at FROM static_token WHERE id = %s", (int(spare["id"]),)).fetchone()
    assert row == (None,)
    # another claimer is not held back by the guesser's failures
    _ok(w.customer.post("/api/inject/claim", json={"code": spare["claim_code"]}), 201)


def test_the_platform_api_lists_generates_claims_and_unclaims(world: World) -> None:
    w = world
    made = _ok(w.maker_bearer.post(f"{V1}/static-tokens/generate", json={"productId": w.template, "count": 3}), 201)
    assert len(made) == 3
    one = made[0]
    assert set(one) >= {"token", "orgId", "productId", "deviceToken", "createdAt", "status", "ownerId", "deviceId"}
    assert (one["orgId"], one["productId"], one["status"]) == (w.maker_org, w.template, "UNCLAIMED")
    assert one["token"].startswith("sqr_") and len(one["deviceToken"]) == 32
    page = _ok(w.maker_bearer.get(f"{V1}/static-tokens", params={"templateId": w.template, "size": 1000}), 200)
    assert {t["token"] for t in made} <= {t["token"] for t in page["content"]}
    assert page["totalElements"] == len(page["content"])
    # another tenant sees none of M's tokens, and cannot make tokens of M's template
    assert _ok(w.x_bearer.get(f"{V1}/static-tokens"), 200) == {"content": [], "totalElements": 0}
    r = w.x_bearer.post(f"{V1}/static-tokens/generate", json={"productId": w.template, "count": 1})
    assert r.status_code == 404, r.text
    # X's application claims for its user; then gives it back
    claimed = _ok(
        w.x_bearer.post(f"{V1}/static-tokens/claim", json={"token": one["token"], "userId": w.stranger.me["id"]}), 200
    )
    assert (claimed["orgId"], claimed["ownerId"], claimed["productId"]) == (
        w.stranger_org,
        w.stranger.me["id"],
        w.template,
    )
    listed = _ok(w.maker_bearer.get(f"{V1}/static-tokens", params={"templateId": w.template, "size": 1000}), 200)
    now = next(t for t in listed["content"] if t["token"] == one["token"])
    assert (now["status"], now["claimedOrgId"], now["deviceId"]) == ("CLAIMED", w.stranger_org, claimed["deviceId"])
    _ok(w.x_bearer.post(f"{V1}/static-tokens/unclaim", json={"deviceId": claimed["deviceId"]}), 204)
    with w.acc.db() as db:
        row = db.execute("SELECT org_id, owner_id FROM device WHERE id = %s", (claimed["deviceId"],)).fetchone()
    assert row == (w.maker_org, None)


def test_a_device_without_a_screen_is_claimed_by_serial_and_the_pin_of_its_window(
    world: World, paho_device: ConnectDevice
) -> None:
    w = world
    made = _ok(
        w.maker.post(
            "/api/inject/static-tokens/import",
            json={"template_id": w.template, "csv": "serial\nHL-1001\nHL-1002\n", "mapping": {"serial": "Serial"}},
        ),
        201,
    )
    rows = {r["id"]: r for r in _export(w, w.template)}
    mine, other = rows[str(made["ids"][0])], rows[str(made["ids"][1])]

    # (the wrong attempts below are the maker's, whose throttle no other test has used)
    # the genuine device (the SDK) opens its window and shows a PIN
    diags: queue.Queue[str] = queue.Queue()
    with Device(mine["auth_token"], "127.0.0.1", w.acc.config.mqtt_port, keepalive=30) as device:
        device.on_diag(diags.put)
        pin = device.open_claim_window(mine["claim_code"], ttl=300)
        wait_for(lambda: _window(w, mine["id"]), message="the claim window open")

        # someone holding only the other device's leaked token opens a window with a made-up proof
        thief = paho_device(w.acc.config, _flashed(other["auth_token"]))
        thief.publish("claim/open", json.dumps({"pin": "123456", "proof": "00" * 32, "ttl": 300}), qos=1)
        topic, why = thief.next(topic_prefix="downlink/diag")
        assert b"proof does not match" in why, why
        assert not _window(w, other["id"])
        _ok(w.maker.post("/api/inject/claim/headless", json={"serial": "HL-1002", "pin": "123456"}), 404)
        # the right PIN with the wrong serial claims nothing either
        _ok(w.maker.post("/api/inject/claim/headless", json={"serial": "HL-1002", "pin": pin}), 404)
        # an expired window claims nothing: the other device's, opened right, then out of time
        thief.publish("claim/open", json.dumps({"pin": "654321", "proof": claim_proof(other["claim_code"], "654321")}))
        wait_for(lambda: _window(w, other["id"]), message="the other device's window open")
        with w.acc.db() as db:
            db.execute(
                "UPDATE claim_window SET until = now() - interval '1 second' WHERE static_token_id = %s",
                (int(other["id"]),),
            )
        _ok(w.maker.post("/api/inject/claim/headless", json={"serial": "HL-1002", "pin": "654321"}), 404)

        claimed = _ok(
            w.customer.post("/api/inject/claim/headless", json={"serial": "HL-1001", "pin": pin, "name": "Porch"}), 201
        )
        assert (claimed["org_id"], claimed["owner_id"], claimed["name"]) == (
            w.customer_org,
            w.customer.me["id"],
            "Porch",
        )
        # the window closed at its first claim
        assert not _window(w, mine["id"])
        _ok(w.maker.post("/api/inject/claim/headless", json={"serial": "HL-1001", "pin": pin}), 404)
        # a claimed device opens no more windows
        device.open_claim_window(mine["claim_code"], ttl=300)
        assert "unclaimed static-token device" in diags.get(timeout=10)


def _window(w: World, token_id: str) -> bool:
    with w.acc.db() as db:
        row = db.execute(
            "SELECT 1 FROM claim_window WHERE static_token_id = %s AND until > now()", (int(token_id),)
        ).fetchone()
    return row is not None


def test_a_factory_makes_a_thousand_static_tokens_with_qr_labels_and_a_customer_claims_one(world: World) -> None:
    """Issue #17's factory run at its own scale: 1,000 tokens in one request, the CSV and the
    printable QR label sheet hold every one of them, the SDK's example device flashed with one
    reports in unclaimed, and a customer claims it with the code printed on its label."""
    w = world
    factory = _template(w.maker, "Factory Lamp")
    made = _ok(w.maker.post("/api/inject/static-tokens/generate", json={"template_id": factory, "count": 1000}), 201)
    assert made["created"] == 1000
    rows = _export(w, factory)
    assert len(rows) == 1000
    assert len({r["auth_token"] for r in rows}) == len({r["claim_code"] for r in rows}) == 1000
    assert all(r["status"] == "UNCLAIMED" for r in rows)
    sheet = _ok(w.maker.get("/api/inject/static-tokens/labels.svg", params={"template_id": factory}), 200)
    root = ElementTree.fromstring(sheet)  # well-formed SVG
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    labels = root.findall("{http://www.w3.org/2000/svg}g")
    assert len(labels) == 1000  # one group a label, each with its QR code and its code in text
    printed = {t.text for g in labels for t in g.iter("{http://www.w3.org/2000/svg}text") if t.text}
    assert {r["claim_code"] for r in rows} <= printed
    assert all(g.find(".//{http://www.w3.org/2000/svg}path") is not None for g in labels)

    chosen = rows[737]
    example = Path(device_sdk.__file__).parent / "examples" / "quickstart.py"  # three values, then off
    env = {
        **os.environ,
        "BLYNK_AUTH_TOKEN": chosen["auth_token"],
        "BLYNK_HOST": "127.0.0.1",
        "BLYNK_PORT": str(w.acc.config.mqtt_port),
    }
    ran = subprocess.run([sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    found = wait_for(lambda: _device(w, chosen["id"]), message="the flashed device in the maker's organization")
    assert (found["org_id"], found["owner_id"]) == (w.maker_org, None)

    def temperature_stored() -> bool:  # the latest values are written a few seconds after they came
        with w.acc.db() as db:
            row = db.execute("SELECT count(*) FROM datastream_value WHERE device_id = %s", (found["id"],)).fetchone()
        return row == (1,)

    wait_for(temperature_stored, 30, message="the example's Temperature stored")
    _ok(w.customer.post("/api/inject/claim", json={"code": chosen["claim_code"], "name": "Kitchen lamp"}), 201)
    claimed = wait_for(lambda: (d := _device(w, chosen["id"])) and d["org_id"] == w.customer_org and d)
    assert claimed["name"] == "Kitchen lamp" and claimed["owner_id"] is not None
