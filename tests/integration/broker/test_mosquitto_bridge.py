"""Debian's Mosquitto bridges a site into openblynk through Blynk's MQTT Gateway API (issue #14
item 2): ``docs/mosquitto-bridge.conf`` as documented, one bridge connection logged in with an
OAuth client, 100 local paho devices on Mosquitto. Values go up, downlinks and a Blynk.Air
offer come down, every device is online while the bridge is, and offline when it stops.
Loopback only; Mosquitto is stopped at the end whatever happens.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg

from tests.integration.ota.ota_support import FW_TYPE, create_shipment, image, upload
from tests.support.accounts import Api
from tests.support.mosquitto import LocalDevice, bridge_config, free_port, running_mosquitto
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

DEVICES = 100


def _column(stack: StackConfig, sql: str, ids: list[int]) -> dict[int, object]:
    with psycopg.connect(stack.database_url, autocommit=True) as db:
        return {int(r[0]): r[1] for r in db.execute(sql, (ids,)).fetchall()}


def test_mosquitto_bridges_100_devices_both_ways(stack: StackConfig, admin: Api, tmp_path: Path) -> None:
    devices = provision(stack.database_url, thermostat_doc(devices=DEVICES)).devices
    ids = [d.id for d in devices]
    r = admin.post("/api/oauth2/clients", json={"name": f"Site bridge {uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    made = r.json()
    prefixes = {f"site/dev{n}/": d.token for n, d in enumerate(devices)}
    bridge_id = f"site-{uuid.uuid4().hex[:6]}"
    config = bridge_config(
        free_port(), stack.mqtt_port, made["client"]["client_id"], made["client_secret"], prefixes, bridge_id
    )
    with running_mosquitto(config, tmp_path) as mosquitto:
        mosquitto.bridge_connected(bridge_id)
        local: list[LocalDevice] = []
        try:
            for prefix in prefixes:
                local.append(LocalDevice(prefix, mosquitto.port).connect())
            for n, dev in enumerate(local):
                dev.publish("info/mcu", json.dumps({"ver": "1.0.0", "type": FW_TYPE}))
                dev.publish("ds/Label", f"site device {n}")

            def stored() -> bool:
                values = _column(
                    stack, "SELECT device_id, value FROM datastream_value WHERE pin = 2 AND device_id = ANY(%s)", ids
                )
                return values == {d.id: f"site device {n}" for n, d in enumerate(devices)}

            wait_for(stored, 60, 0.2, "every device's value stored")
            online = "SELECT id, online FROM device WHERE id = ANY(%s)"
            wait_for(lambda: all(_column(stack, online, ids).values()), 30, 0.2, "every device online")

            for device in devices:  # downlinks: a value written from the console
                r = admin.post(f"/api/console/devices/{device.id}/values/1", json={"value": "1"})
                assert r.status_code == 200, r.text
            wait_for(lambda: all(dev.got("downlink/ds/Power") == [b"1"] for dev in local), 60, 0.2, "every downlink")

            fw = upload(admin, image("2.0.0"))
            create_shipment(
                admin, name=f"bridge {bridge_id}", firmware_id=fw["id"], target={"kind": "devices", "device_ids": ids}
            )
            wait_for(lambda: all(dev.got("downlink/ota/json") for dev in local), 60, 0.2, "every Blynk.Air offer")
            offers = [json.loads(dev.got("downlink/ota/json")[-1]) for dev in local]
            assert {(o["ver"], o["type"]) for o in offers} == {("2.0.0", FW_TYPE)}
            assert not any(dev.got("downlink/diag") for dev in local)  # nothing was refused on the way
        finally:
            for dev in local:
                dev.close()
    offline = "SELECT id, online FROM device WHERE id = ANY(%s)"
    wait_for(lambda: not any(_column(stack, offline, ids).values()), 30, 0.2, "every device offline with the bridge")
