"""The latest value survives what history survives (issue #15, "nothing acknowledged is lost").

A device publishes values at QoS 1 and, the moment the PUBACK of the last one arrives, the app
is killed with SIGKILL (and, for a power loss, the broker and PostgreSQL as well). Started
again, the app's latest value of each datastream (what the HTTP API ``get`` returns, what the
console shows and ``get/ds`` syncs) is the value the device was acknowledged last: for a
datastream that keeps raw data, for a number kept only as rollups ("Save Raw Data" off,
Blynk's default) and for a string that is not history at all.

Before the latest value was written in the history transaction it was flushed coalesced once
a second, so these came back with a value up to a second old.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.transfer.schemas import DeviceOut
from tests.support.chaos import ChaosStack
from tests.support.provision import provision

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
STREAMS = [
    {"pin": "V0", "name": "Raw", "type": "integer", "min": 0, "max": 1_000_000, "save_raw": True},
    {"pin": "V1", "name": "Rolled", "type": "integer", "min": 0, "max": 1_000_000, "save_raw": False},
    {"pin": "V2", "name": "Label", "type": "string", "save_raw": False},
]
VALUES = 40
"""Values a round publishes to each datastream (the last one is what must survive)."""


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[ChaosStack, DeviceOut]]:
    suffix = uuid.uuid4().hex[:8]
    # the per-device rate limit drops a burst's values by design (and PUBACKs them): not here
    chaos = ChaosStack(ROOT / ".pytest-data" / f"latest-crash-{os.getpid()}", device_rate_limit="10000")
    try:
        doc = {
            "templates": [{"name": f"Latest {suffix}", "datastreams": STREAMS}],
            "devices": [{"name": f"Latest {suffix}", "template": f"Latest {suffix}"}],
        }
        device = provision(chaos.pg.url(), doc).devices[0]
        chaos.start_broker()
        chaos.start_app()
        yield chaos, device
    finally:
        chaos.close()


def _publish_until_acknowledged(chaos: ChaosStack, device: DeviceOut, round_: int) -> dict[str, str]:
    """Publish :data:`VALUES` values to each datastream at QoS 1 and return once the last one is
    PUBACKed: the values the device was told are stored, by pin."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"latest-{uuid.uuid4().hex[:6]}")
    client.username_pw_set("device", device.token)
    client.connect("127.0.0.1", chaos.config.mqtt_port, keepalive=30)
    client.loop_start()
    try:
        infos: list[Any] = []
        last: dict[str, str] = {}
        for i in range(VALUES):
            n = round_ * 1000 + i
            for pin, topic, text in (
                ("V0", "ds/Raw", str(n)),
                ("V1", "ds/Rolled", str(n)),
                ("V2", "ds/Label", f"s{n}"),
            ):
                infos.append(client.publish(topic, text, qos=1))
                last[pin] = text
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()
        return last
    finally:
        client.disconnect()
        client.loop_stop()


def _latest(chaos: ChaosStack, device: DeviceOut) -> dict[str, str]:
    """The latest value of each datastream, as the HTTP device API's ``get`` answers."""
    base = chaos.config.base_url
    return {pin: httpx.get(f"{base}/external/api/get?token={device.token}&{pin}").text for pin in ("V0", "V1", "V2")}


def test_app_sigkill_right_after_the_puback_keeps_the_acknowledged_latest_values(
    stack: tuple[ChaosStack, DeviceOut],
) -> None:
    chaos, device = stack
    acknowledged = _publish_until_acknowledged(chaos, device, 1)
    chaos.kill("app")
    chaos.start_app()
    assert _latest(chaos, device) == acknowledged


def test_power_loss_right_after_the_puback_keeps_the_acknowledged_latest_values(
    stack: tuple[ChaosStack, DeviceOut],
) -> None:
    chaos, device = stack
    acknowledged = _publish_until_acknowledged(chaos, device, 2)
    chaos.kill("app")
    chaos.kill("broker")
    chaos.kill_postgres()
    chaos.pg.start()
    chaos.start_broker()
    chaos.start_app()
    assert _latest(chaos, device) == acknowledged
