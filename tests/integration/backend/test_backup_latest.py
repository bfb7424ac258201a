"""A backup taken while values flow keeps latest values that agree with history (issue #15).

Devices publish numbered values at QoS 1 to a datastream that keeps raw data and to one kept
only as rollups ("Save Raw Data" off, Blynk's default) while ``openblynk backup`` runs. Restored
(``openblynk restore`` into an empty database), each datastream's latest value is history's last
value: the raw row with the newest time, or the rollups' last value and time. pg_dump reads one
snapshot, and the latest values are written in the transaction that commits their history rows,
so the snapshot cannot hold one without the other. (They used to be flushed apart, once a
second, so a snapshot caught history up to a second ahead of the latest values.)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.transfer.schemas import DeviceOut
from tests.integration.backend.test_backup import cli
from tests.support.datadir import remove_data_dir
from tests.support.net import wait_for
from tests.support.provision import provision
from tests.support.stack import StackConfig, running

ROOT = Path(__file__).resolve().parents[3]
DEVICES = 3
RATE = 10.0
"""Values a second each device publishes to each datastream."""


def _doc() -> dict[str, object]:
    suffix = uuid.uuid4().hex[:8]
    streams = [
        {"pin": "V0", "name": "Raw", "type": "integer", "min": 0, "max": 1_000_000, "save_raw": True},
        {"pin": "V1", "name": "Rolled", "type": "integer", "min": 0, "max": 1_000_000, "save_raw": False},
    ]
    return {
        "templates": [{"name": f"Flow {suffix}", "datastreams": streams}],
        "devices": [{"name": f"Flow {suffix} {i}", "template": f"Flow {suffix}"} for i in range(DEVICES)],
    }


def _database(pg_server: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    base, _, query = pg_server.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
def databases(pg_server: str, template_db: str) -> Iterator[tuple[str, str]]:
    """A migrated database for the running system and an empty one to restore into."""
    names = [f"flow_{uuid.uuid4().hex[:8]}", f"restored_{uuid.uuid4().hex[:8]}"]
    source = _database(pg_server, names[0], template_db)
    target = _database(pg_server, names[1])
    yield source, target
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def place() -> Iterator[Path]:
    path = ROOT / ".pytest-data" / f"backup-flow-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    remove_data_dir(path)


class Flow:
    """Devices publishing 0, 1, 2... to ``ds/Raw`` and ``ds/Rolled`` at :data:`RATE` a second."""

    def __init__(self, config: StackConfig, devices: list[DeviceOut]) -> None:
        self.clients = []
        for info in devices:
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"flow-{info.id}")
            client.username_pw_set("device", info.token)
            client.connect("127.0.0.1", config.mqtt_port, keepalive=30)
            client.loop_start()
            self.clients.append(client)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flow", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1 / RATE):
            for client in self.clients:
                client.publish("ds/Raw", str(self.sent), qos=1)
                client.publish("ds/Rolled", str(self.sent), qos=1)
            self.sent += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


def _latest_and_last(url: str, device_id: int) -> tuple[tuple[str, datetime] | None, ...]:
    """The latest value of V0 and V1, and history's last of each (raw row; rollups' last)."""
    with psycopg.connect(url) as conn:
        latest = dict(
            (pin, (value, at))
            for pin, value, at in conn.execute(
                "SELECT pin, value, updated_at FROM datastream_value WHERE device_id = %s", (device_id,)
            ).fetchall()
        )
        raw = conn.execute(
            "SELECT value, ts FROM history WHERE device_id = %s AND pin = 0 ORDER BY ts DESC LIMIT 1", (device_id,)
        ).fetchone()
        rolled = conn.execute(
            "SELECT last, last_ts FROM history_minute WHERE device_id = %s AND pin = 1 ORDER BY last_ts DESC LIMIT 1",
            (device_id,),
        ).fetchone()
    as_text = [None if r is None else (str(int(r[0])), r[1]) for r in (raw, rolled)]
    return latest.get(0), as_text[0], latest.get(1), as_text[1]


def test_a_backup_taken_while_values_flow_restores_latest_values_equal_to_history(
    databases: tuple[str, str], place: Path
) -> None:
    source_db, target_db = databases
    source = StackConfig(data_dir=place / "source", database_url=source_db)
    devices = provision(source_db, _doc()).devices
    archive = place / "openblynk.tar"
    with running(source):
        flow = Flow(source, devices)
        try:
            wait_for(lambda: flow.sent >= 2 * RATE, timeout=30, message="values flowing")
            made = cli(source, "backup", str(archive))
            sent_at_backup = flow.sent
            time.sleep(0.5)  # still flowing as the backup ends
        finally:
            flow.close()
    assert made.returncode == 0, made.stderr

    target = StackConfig(data_dir=place / "target", database_url=target_db)
    restored = cli(target, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    for device in devices:
        latest_raw, last_raw, latest_rolled, last_rolled = _latest_and_last(target_db, device.id)
        assert last_raw is not None and last_rolled is not None, "the backup holds no history of the flow"
        assert int(last_raw[0]) < sent_at_backup
        assert (latest_raw, latest_rolled) == (last_raw, last_rolled), f"device {device.id}"
