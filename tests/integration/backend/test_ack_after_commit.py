"""A device's QoS 1 PUBACK means "committed" (issue #15 item 1, ``broker._acks``).

Real processes: PostgreSQL, the broker and the app (``tests.support.chaos.ChaosStack``), with
paho devices as Blynk firmware is (clean session, resending what has no PUBACK after a
reconnect). The strongest check is made right after a SIGKILL, before anything restarts:
every value PUBACKed until then is already in history.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.transfer.schemas import DeviceOut
from tests.support.chaos import ChaosStack, FleetDevice, HttpDevice, Sent, chaos_doc, stored_counts
from tests.support.net import wait_for
from tests.support.provision import provision

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[3]
SEQ_PIN, HTTP_PIN = 0, 1


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[ChaosStack, list[DeviceOut]]]:
    stack = ChaosStack(ROOT / ".pytest-data" / f"acks-{os.getpid()}", device_rate_limit="10000")
    try:
        infos = provision(stack.pg.url(), chaos_doc(4, 0)).devices
        stack.start_broker()
        stack.start_app()
        yield stack, infos
    finally:
        stack.close()


def device(stack: ChaosStack, info: DeviceOut) -> FleetDevice:
    dev = FleetDevice(info, stack.config.mqtt_port, [])
    wait_for(lambda: dev.connected, 30, message="the device connects")
    return dev


def in_history(stack: ChaosStack, dev: FleetDevice, sent: list[Sent]) -> set[int]:
    """Which of ``sent`` are in history."""
    stored = stored_counts(stack.pg.url(), [dev.info.id], SEQ_PIN)[dev.info.id]
    return {s.seq for s in sent if stored[s.seq] > 0}


def publish_until(dev: FleetDevice, count: int, start: int = 0) -> None:
    """Publish ``count`` numbers, each once fewer than 20 wait for their PUBACK (paho's window)."""
    for seq in range(start, start + count):
        wait_for(lambda: dev.unacked() < 20, 60, message="room in the device's window")
        dev.publish(seq)
        time.sleep(0.005)


def test_puback_waits_for_the_app_and_follows_its_commit(world: tuple[ChaosStack, list[DeviceOut]]) -> None:
    stack, infos = world
    dev = device(stack, infos[0])
    try:
        assert stack.app is not None
        stack.app.stop()  # a clean stop: the broker keeps the app's session
        for seq in range(5):
            dev.publish(seq)
        time.sleep(2.0)  # ample for a PUBACK on receipt (what the broker did before #15)
        assert dev.acked() == []  # no app, no commit: no PUBACK
        stack.start_app()
        wait_for(lambda: len(dev.acked()) == 5, 60, message="the five PUBACKs after the app is back")
        assert in_history(stack, dev, dev.sent) == set(range(5))
    finally:
        dev.close()


@pytest.mark.parametrize("role", ["app", "broker"])
def test_every_value_acknowledged_before_a_sigkill_is_already_stored(
    world: tuple[ChaosStack, list[DeviceOut]], role: str
) -> None:
    stack, infos = world
    dev = device(stack, infos[1 if role == "app" else 2])
    try:
        publish_until(dev, 300)
        stack.kill(role)  # mid-stream: some values are on their way, some stored, some both
        acked = dev.acked()
        assert acked, "no value was acknowledged before the kill"
        assert in_history(stack, dev, acked) == {s.seq for s in acked}  # nothing restarted yet
        stack.start_broker() if role == "broker" else stack.start_app()
        wait_for(lambda: dev.connected, 60, message="the device reconnects")
        publish_until(dev, 20, start=300)
        wait_for(lambda: len(dev.acked()) == len(dev.sent), 90, message="every value acknowledged")
        assert in_history(stack, dev, dev.sent) == {s.seq for s in dev.sent}  # resent after the kill
    finally:
        dev.close()


def test_every_http_update_answered_200_before_an_app_sigkill_is_already_stored(
    world: tuple[ChaosStack, list[DeviceOut]],
) -> None:
    stack, infos = world
    writer = HttpDevice(infos[3], stack.config.base_url, False, rate=50.0)
    try:
        wait_for(lambda: writer.ok() >= 50, 60, message="50 updates answered 200")
        stack.kill("app")
    finally:
        writer.stop()
    answered = {w.seq for w in writer.writes if w.ok}
    stored = stored_counts(stack.pg.url(), [infos[3].id], HTTP_PIN)[infos[3].id]
    assert answered and {seq for seq in answered if stored[seq] == 0} == set()  # nothing restarted yet
    stack.start_app()
