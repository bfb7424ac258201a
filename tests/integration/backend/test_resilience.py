"""Nothing a device sends at QoS 1 is lost across an app restart or a database outage.

These tests run their own PostgreSQL, broker and app (they stop parts on purpose), with a
2-second device cache so that cached entries expire during the outage. The outage lasts
``OPENBLYNK_TEST_OUTAGE_SECONDS`` (30 by default, as the issue asks).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from backend.db.embedded import EmbeddedPostgres
from backend.db.migrate import migrate
from backend.transfer.schemas import DeviceOut
from tests.integration.backend.conftest import PahoDevice
from tests.support.datadir import remove_data_dir
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import Process, StackConfig, wait_http_ready, wait_port

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]
OUTAGE = float(os.environ.get("OPENBLYNK_TEST_OUTAGE_SECONDS", "30"))


@dataclass
class OwnStack:
    config: StackConfig
    pg: EmbeddedPostgres
    broker: Process
    app: Process

    def stop_app(self) -> None:
        """Stop the app as a deployment does (SIGTERM) and check it shut down cleanly."""
        self.app.stop(signal.SIGTERM)
        assert "Application shutdown complete" in self.app.log(), self.app.log()[-2000:]

    def start_app(self) -> None:
        self.app = Process(self.config, "app", name="app-2")
        wait_http_ready(self.config, self.app)


@pytest.fixture
def own() -> Iterator[OwnStack]:
    data_dir = ROOT / ".pytest-data" / f"resilience-{os.getpid()}"
    remove_data_dir(data_dir)
    pg = EmbeddedPostgres(data_dir / "pg" / "postgres")
    pg.start()
    migrate(pg.url())
    config = StackConfig(data_dir=data_dir / "stack", database_url=pg.url())
    env = config.env
    # short cache: entries expire during the outage; high rate limit: these tests send bursts
    # (the 50 messages/s limit would drop them, by design, and it is tested elsewhere)
    config.env = lambda: {
        **env(),
        "OPENBLYNK_CACHE_TTL_SECONDS": "2",  # type: ignore[method-assign]
        "OPENBLYNK_DEVICE_RATE_LIMIT": "10000",
    }
    broker = Process(config, "broker")
    stack: OwnStack | None = None
    try:
        wait_port(config.mqtt_port, broker)
        app = Process(config, "app")
        stack = OwnStack(config, pg, broker, app)
        wait_http_ready(config, app)
        yield stack
    finally:
        for proc in ((stack.app if stack else None), broker):
            if proc is not None:
                proc.stop()
        pg.stop()
        remove_data_dir(data_dir)


def raw_values(stack: OwnStack, device_id: int) -> list[float]:
    with psycopg.connect(stack.pg.url()) as conn:
        rows = conn.execute(
            "SELECT value FROM history WHERE device_id = %s AND pin = 0 ORDER BY value", (device_id,)
        ).fetchall()
    return [r[0] for r in rows]


def device_for(stack: OwnStack, connect: ConnectDevice) -> tuple[DeviceOut, PahoDevice]:
    info = provision(stack.config.database_url, thermostat_doc(save_raw=True)).devices[0]
    return info, connect(stack.config, info)


def publish_range(device: PahoDevice, start: int, stop: int) -> None:
    """Values i / 10: distinct, and inside the Temperature datastream's -40..85 range. Not
    waiting for PUBACKs: a PUBACK comes only after the app's commit (README "What each QoS
    promises"), so while the app or the database is down paho keeps them, at most 20 in flight."""
    for i in range(start, stop):
        device.client.publish("ds/Temperature", str(i / 10), qos=1)


def expected(count: int) -> list[float]:
    return [i / 10 for i in range(count)]


def health(stack: OwnStack) -> dict[str, object]:
    with httpx.Client(base_url=stack.config.base_url, timeout=10) as http:
        return http.get("/healthz").json()  # type: ignore[no-any-return]


MARKER = 84.0
"""A value none of the tests' ranges reaches (they stay below 30)."""


def settled_values(stack: OwnStack, device: PahoDevice) -> list[float]:
    """The device's stored values once everything it sent so far is handled, the marker last.

    The device sends :data:`MARKER` after all else; the broker delivers a session's messages in
    order, again ones included, so once the marker is stored and the app holds nothing
    unacknowledged, every copy of an earlier message has been stored or dropped: a duplicate
    stored late would be in the history by then."""
    device.publish("ds/Temperature", str(MARKER), qos=1)
    wait_for(
        lambda: MARKER in raw_values(stack, device.info.id) and health(stack)["unacknowledged"] == 0,
        timeout=30,
        interval=0.2,
        message="the marker stored and nothing unacknowledged",
    )
    return raw_values(stack, device.info.id)


def test_nothing_is_lost_across_an_app_restart(own: OwnStack, paho_device: ConnectDevice) -> None:
    info, device = device_for(own, paho_device)
    publish_range(device, 0, 20)
    own.stop_app()
    publish_range(device, 20, 60)  # QoS 1: kept in the app's persistent broker session
    own.start_app()
    publish_range(device, 60, 80)
    wait_for(lambda: raw_values(own, info.id) == expected(80), timeout=30, message="all 80 values stored")
    assert settled_values(own, device) == expected(80) + [MARKER]  # and none of them twice


def test_nothing_is_lost_across_a_database_outage(own: OwnStack, paho_device: ConnectDevice) -> None:
    info, device = device_for(own, paho_device)
    publish_range(device, 0, 10)
    wait_for(lambda: raw_values(own, info.id) == expected(10), timeout=20, message="values before the outage")
    own.pg.stop()
    import time

    deadline = time.monotonic() + OUTAGE
    sent = 10
    while time.monotonic() < deadline:  # a device keeps reporting through the outage
        publish_range(device, sent, sent + 5)
        sent += 5
        time.sleep(1)
    assert own.app.alive() and own.broker.alive()
    own.pg.start()
    wait_for(
        lambda: raw_values(own, info.id) == expected(sent),
        timeout=60,
        interval=0.5,
        message=f"all {sent} values stored after the outage",
    )
    with httpx.Client(base_url=own.config.base_url, timeout=10) as http:
        assert http.get(f"/external/api/get?token={info.token}&v0").text == repr((sent - 1) / 10)
    assert settled_values(own, device) == expected(sent) + [MARKER]  # and none of them twice


def test_stopping_the_app_ingests_what_it_already_received(own: OwnStack, paho_device: ConnectDevice) -> None:
    """A burst right before SIGTERM is stored in full and once: the app stores what it took,
    acknowledges it, waits until the broker has read those acknowledgements before it
    disconnects, and leaves the rest to the broker, which sends it again (this test failed now
    and then while the broker forgot messages in flight when the app went away, and stored a
    run of values twice while the app's last PUBACKs could be lost with its socket:
    backend.transport.mqtt, tests/integration/backend/test_service_stop.py)."""
    info, device = device_for(own, paho_device)
    for i in range(300):
        device.client.publish("ds/Temperature", str(i / 10), qos=1)
    own.stop_app()
    own.start_app()
    try:
        wait_for(lambda: set(raw_values(own, info.id)) == set(expected(300)), timeout=30, message="all 300 values")
    except AssertionError:
        stored = raw_values(own, info.id)
        missing = sorted(set(expected(300)) - set(stored))
        raise AssertionError(f"{len(stored)} stored; missing {missing[:20]}") from None
    settled = settled_values(own, device)
    twice = sorted({v for v in settled if settled.count(v) > 1})
    assert settled == expected(300) + [MARKER], f"stored twice: {twice[:20]}"


def test_a_crash_loses_nothing_the_app_had_taken_but_not_stored(own: OwnStack, paho_device: ConnectDevice) -> None:
    """SIGKILL while the database is down: the app holds the 20 values (the device's window of
    unacknowledged publishes) it could not store, the device the other 30. The app acknowledges
    a message only after its rows are committed, so the broker still has them and sends them
    again to the restarted app (at least once: nothing here was stored twice, since nothing was
    stored before the crash)."""
    info, device = device_for(own, paho_device)
    publish_range(device, 0, 10)
    wait_for(lambda: raw_values(own, info.id) == expected(10), timeout=20, message="values before the crash")
    taken = int(health(own)["ingested"])  # type: ignore[call-overload]
    own.pg.stop()
    publish_range(device, 10, 60)
    wait_for(
        lambda: int(health(own)["ingested"]) >= taken + 20,
        timeout=20,  # type: ignore[call-overload]
        message="the app took the device's 20 values in flight",
    )
    assert int(health(own)["unacknowledged"]) >= 20  # type: ignore[call-overload]
    own.app.stop(signal.SIGKILL)
    own.pg.start()
    own.start_app()
    wait_for(
        lambda: raw_values(own, info.id) == expected(60),
        timeout=60,
        interval=0.5,
        message="all 60 values stored once after the crash",
    )
    assert settled_values(own, device) == expected(60) + [MARKER]  # and none of them twice
