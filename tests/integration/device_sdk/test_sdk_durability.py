"""device_sdk at QoS 1 against the real parts (PostgreSQL, broker and app processes): values
written while the broker or the app is down reach history once both are back, and a broker
killed mid-stream loses no value the library reported acknowledged.

The stack is the chaos suite's (tests/support/chaos.py): a test can SIGKILL the broker or the
app and start it again on the same ports.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.transfer.schemas import DeviceOut
from device_sdk import Backoff, Device, DeviceTimeoutError
from tests.support.chaos import SEQ_PIN, ChaosStack, chaos_doc, stored_counts
from tests.support.net import wait_for
from tests.support.provision import provision

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[3]
WAIT = 120.0
"""Upper bound for a flush (an app start takes ~10 s on a loaded machine); never reached when things work."""


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[ChaosStack, DeviceOut]]:
    # The device limit (50/s) drops excess values by design: a burst of resent values may pass it.
    stack = ChaosStack(ROOT / ".pytest-data" / f"sdk-durability-{os.getpid()}", device_rate_limit="10000")
    try:
        info = provision(stack.pg.url(), chaos_doc(1, 0)).devices[0]
        stack.start_broker()
        stack.start_app()
        yield stack, info
    finally:
        stack.close()


def make_device(stack: ChaosStack, info: DeviceOut) -> Device:
    return Device(info.token, "127.0.0.1", stack.config.mqtt_port, qos=1, backoff=Backoff(initial=0.2, maximum=1.0))


def history(stack: ChaosStack, info: DeviceOut) -> Counter[int]:
    return stored_counts(stack.pg.url(), [info.id], SEQ_PIN)[info.id]


def broker_connected(stack: ChaosStack) -> bool:
    try:
        return bool(stack.health()["broker_connected"])
    except OSError:
        return False


def test_values_written_while_the_broker_is_down_reach_history(stack: tuple[ChaosStack, DeviceOut]) -> None:
    world, info = stack
    device = make_device(world, info)
    with device:
        for n in range(0, 5):
            device.write("Seq", n)
        device.flush(WAIT)
        # Without the broker's "PUBACK after commit", a PUBACK comes before the app stored the
        # value: let these be stored first (the mid-stream kill below is the test of that).
        assert wait_for_history(world, info, range(5)) == []
        assert world.broker is not None
        world.broker.stop(signal.SIGKILL)
        wait_for(lambda: not device.connected, message="the device to notice the broker is gone")
        # The device stops trying while the broker is down, so that the app is subscribed again
        # before the device sends (what holds without the broker's "PUBACK after commit").
        device.disconnect()
        for n in range(5, 15):
            device.write("Seq", n)
        assert device.pending == 10
        world.start_broker()
        wait_for(lambda: broker_connected(world), timeout=WAIT, message="the app to reconnect to the broker")
        device.connect()
        flush(device, world)
    missing = wait_for_history(world, info, range(15))
    assert missing == [], f"acknowledged values not in history: {missing}\n{world.logs()}"
    assert history(world, info) == Counter(range(15))  # and each once: nothing was resent


def test_values_written_while_the_app_is_down_reach_history(stack: tuple[ChaosStack, DeviceOut]) -> None:
    world, info = stack
    device = make_device(world, info)
    before = history(world, info)
    with device:
        world.kill("app")
        for n in range(100, 110):
            device.write("Seq", n)
        world.start_app()
        flush(device, world)
    missing = wait_for_history(world, info, range(100, 110))
    assert missing == [], f"acknowledged values not in history: {missing}\n{world.logs()}"
    assert history(world, info) - before == Counter(range(100, 110))


def test_a_broker_killed_mid_stream_loses_no_acknowledged_value(stack: tuple[ChaosStack, DeviceOut]) -> None:
    """The device reconnects on its own, maybe before the app has: with the broker's "PUBACK
    after commit" nothing it resends is acknowledged before it is stored (without it, 246 of
    300 values were acknowledged and lost)."""
    world, info = stack
    values = range(1000, 1300)
    device = make_device(world, info)
    before = history(world, info)
    with device:

        def stream() -> None:
            for n in values:
                device.write("Seq", n)
                time.sleep(0.01)

        writer = threading.Thread(target=stream, name="writer")
        writer.start()
        try:
            wait_for(lambda: len(history(world, info) - before) >= 20, timeout=60, message="the stream to flow")
            assert world.broker is not None
            world.broker.stop(signal.SIGKILL)
            world.start_broker()
        finally:
            writer.join(WAIT)
        flush(device, world)  # the library reports every value acknowledged
    missing = wait_for_history(world, info, values)
    assert missing == [], f"acknowledged values not in history: {missing}\n{world.logs()}"


def flush(device: Device, world: ChaosStack) -> None:
    """``device.flush()``; a timeout fails with the processes' logs."""
    try:
        device.flush(WAIT)
    except DeviceTimeoutError as exc:
        pytest.fail(f"{exc}\n{world.logs()}")


def wait_for_history(world: ChaosStack, info: DeviceOut, values: range, timeout: float = 30.0) -> list[int]:
    """The values still missing from history after waiting up to ``timeout`` s for them."""
    deadline = time.monotonic() + timeout
    while True:
        missing = sorted(set(values) - set(history(world, info)))
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.2)
