"""Wi-Fi provisioning end to end on loopback (issue #17 item 2), with the real app, PostgreSQL and
broker: a user (role User) asks the console for a provisioning token; the device library in
provisioning mode serves Blynk Edgent's access-point API on 127.0.0.1 (the Wi-Fi simulated);
``openblynk provision`` (a real process) hands it the network and the token; the device joins,
connects with the token, sends ``info/mcu`` and is that user's device in their organization,
named as they chose. Also: the AP API's exact answers, an expired token, another tenant's
template."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from device_sdk import Device, InvalidTokenError, ProvisioningServer, WifiNetwork
from tests.support.accounts import ADMIN, ROOT_ADMIN, USER, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.net import wait_for

ROOT = Path(__file__).resolve().parents[3]
V1 = "/api/v1/organization"


@dataclass
class SimulatedWifi:
    """The device's Wi-Fi as provisioning sees it: two networks in range, the joins recorded."""

    joined: list[tuple[str, str]] = field(default_factory=list)

    def scan(self) -> list[WifiNetwork]:
        return [WifiNetwork("Home", "aa:bb:cc:dd:ee:01", -48, "WPA2/PSK", 6), WifiNetwork("Cafe", sec="OPEN")]

    def join(self, ssid: str, password: str) -> None:
        self.joined.append((ssid, password))


@dataclass
class World:
    acc: AccountsStack
    user: Api
    user_org: int
    other: Api
    template: int
    template_public: str


def _ok(r: httpx.Response, status: int) -> Any:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def world(pg_server: str, template_db: str) -> Iterator[World]:
    for acc in start_accounts_stack(pg_server, template_db, "provision"):
        root = acc.login(*ROOT_ADMIN)
        org, other_org = (_ok(root.post("/api/orgs", json={"name": n}), 201)["id"] for n in ("Home", "Elsewhere"))
        admin = invite_and_join(acc, root, org, "admin@example.com", ADMIN)
        user = invite_and_join(acc, root, org, "user@example.com", USER)
        other = invite_and_join(acc, root, other_org, "other@example.com", ADMIN)
        template = _ok(admin.post("/api/console/templates", json={"name": "Sprinkler"}), 201)
        yield World(acc, user, org, other, template["id"], template["public_id"])
        for c in (root, admin, user, other):
            c.close()


@pytest.fixture
def device_ap(world: World) -> Iterator[tuple[ProvisioningServer, SimulatedWifi]]:
    wifi = SimulatedWifi()
    server = ProvisioningServer(
        wifi,
        template_id=world.template_public,
        firmware_version="1.2.3",
        name="Sprinkler",
        uid="0123456789ab",
        mac="02:00:00:00:00:01",
        host="127.0.0.1",
        port=0,
    )
    server.start()
    yield server, wifi
    server.stop()


def _url(server: ProvisioningServer) -> str:
    host, port = server.address
    return f"http://{host}:{port}"


def test_the_access_point_api_answers_as_blynk_edgent(
    world: World, device_ap: tuple[ProvisioningServer, SimulatedWifi]
) -> None:
    server, _ = device_ap
    with httpx.Client(base_url=_url(server), timeout=10) as ap:
        assert _ok(ap.get("/board_info.json"), 200) == {
            "vendor": "openblynk",
            "tmpl_id": world.template_public,
            "fw_type": world.template_public,
            "fw_ver": "1.2.3",
            "name": "Sprinkler",
            "uid": "0123456789ab",
            "bssid": "02:00:00:00:00:01",
            "last_error": "",
            "ifs": [{"name": "wifi", "mac": "02:00:00:00:00:01", "scan": True, "5ghz": False, "static_ip": True}],
        }
        assert _ok(ap.get("/wifi_scan.json"), 200) == [
            {"ssid": "Home", "bssid": "aa:bb:cc:dd:ee:01", "rssi": -48, "sec": "WPA2/PSK", "ch": 6},
            {"ssid": "Cafe", "bssid": "", "rssi": -60, "sec": "OPEN", "ch": 1},
        ]
        for bad in (
            {"if": "wifi", "ssid": "Home", "pass": "x", "blynk": "short", "host": "h"},
            {"if": "wifi", "ssid": "", "pass": "x", "blynk": "A" * 32, "host": "h"},
            {"if": "wifi", "ssid": "Home", "pass": "x", "blynk": "A" * 32, "host": "h", "port": "eighty"},
        ):
            assert _ok(ap.get("/config", params=bad), 500) == {"status": "error", "msg": "Configuration invalid"}
        good = {"if": "wifi", "ssid": "Home", "pass": "pw", "blynk": "A" * 32, "host": "h", "port": "1883"}
        assert _ok(ap.get("/config", params=good), 200) == {"status": "ok", "msg": "Trying to connect..."}
        assert server.wait(1).ssid == "Home"
        assert _ok(ap.get("/reset"), 200) == {"status": "ok", "msg": "Configuration reset"}
        with pytest.raises(TimeoutError):
            server.wait(0.1)


def test_a_device_provisioned_over_its_access_point_lands_in_its_users_account(
    world: World, device_ap: tuple[ProvisioningServer, SimulatedWifi]
) -> None:
    w = world
    server, wifi = device_ap
    issued = _ok(w.user.post("/api/inject/provisioning", json={"template_id": w.template, "name": "Garden"}), 201)
    assert len(issued["token"]) == 32 and issued["template_public"] == w.template_public

    # the laptop, joined to the device's access point, runs the CLI
    cli = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from backend.cli import main; sys.exit(main())",
            "provision",
            "--device",
            _url(server),
            "--token",
            issued["token"],
            "--ssid",
            "Home",
            "--password",
            "hunter2-long",
            "--server",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=w.acc.config.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert "device says: Trying to connect..." in cli.stdout

    # the app hears of the activation through a change notice (the device is made in the broker)
    notices = psycopg.connect(w.acc.config.database_url, autocommit=True)
    notices.execute("LISTEN openblynk_changes")

    # the device's side: join the network, connect with the token it was given
    config = server.wait(10)
    wifi.join(config.ssid, config.password)
    assert wifi.joined == [("Home", "hunter2-long")]
    assert (config.host, config.port) == ("127.0.0.1", w.acc.config.mqtt_port)
    device = Device(
        config.token, config.host, config.port, template_id=w.template_public, firmware_version="1.2.3", keepalive=30
    )
    with device:

        def made() -> tuple[Any, ...] | None:
            with w.acc.db() as db:
                return db.execute(
                    "SELECT d.org_id, d.owner_id, d.template_id, d.online, d.fw_version FROM device d "
                    "WHERE d.name = 'Garden'"
                ).fetchone()

        row = wait_for(lambda: (r := made()) and r[3] and r[4] and r, message="the provisioned device online")
    assert row == (w.user_org, w.user.me["id"], w.template, True, "1.2.3")
    with w.acc.db() as db:
        found = db.execute("SELECT id FROM device WHERE name = 'Garden'").fetchone()
    assert found is not None
    heard = [n.payload for n in notices.notifies(timeout=5, stop_after=50) if n.payload.startswith("activated:")][:1]
    notices.close()
    assert heard == [f"activated:{found[0]}"]
    listed = _ok(w.user.get("/api/devices"), 200)
    assert "Garden" in [d["name"] for d in listed["content"]]
    with w.acc.db() as db:
        actions = {r[0] for r in db.execute("SELECT action FROM audit_log").fetchall()}
    assert {"device.provisioning_token", "device.provision"} <= actions


def test_an_expired_provisioning_token_makes_no_device(world: World) -> None:
    w = world
    issued = _ok(w.user.post("/api/inject/provisioning", json={"template_id": w.template, "name": "Late"}), 201)
    with w.acc.db() as db:
        db.execute("UPDATE provisioning_token SET expires_at = now() - interval '1 second' WHERE name = 'Late'")
    with pytest.raises(InvalidTokenError):
        Device(issued["token"], "127.0.0.1", w.acc.config.mqtt_port, keepalive=30).connect(timeout=15)
    with w.acc.db() as db:
        assert db.execute("SELECT count(*) FROM device WHERE name = 'Late'").fetchone() == (0,)
    # another organization cannot ask for a token of this template
    r = w.other.post("/api/inject/provisioning", json={"template_id": w.template, "name": "Stolen"})
    assert r.status_code == 404, r.text
