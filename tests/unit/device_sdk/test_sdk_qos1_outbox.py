"""The QoS 1 outbox without a server: bounded, explicit when full, never dropping a value."""

from __future__ import annotations

import pytest

from device_sdk import Device, DeviceError, OutboxFullError
from device_sdk._outbox import Outbox

TOKEN = "AbCdEfGhIjKlMnOpQrStUvWxYz012345"


def test_a_full_outbox_refuses_the_next_value_and_keeps_the_others() -> None:
    device = Device(TOKEN, "127.0.0.1", qos=1, outbox_limit=2)
    device.write("T", 1)
    device.write_many({"T": 2})
    with pytest.raises(OutboxFullError, match="holds 2 values without a PUBACK") as caught:
        device.write("T", 3)
    assert isinstance(caught.value, DeviceError)
    assert device.pending == 2


def test_a_full_outbox_refuses_after_waiting_outbox_timeout() -> None:
    device = Device(TOKEN, "127.0.0.1", qos=1, outbox_limit=1, outbox_timeout=0.05)
    device.write("T", 1)
    with pytest.raises(OutboxFullError, match=r"waited 0.05 s"):
        device.write("T", 2)
    assert device.pending == 1


def test_qos_0_is_the_default_and_qos_1_can_be_asked_per_value() -> None:
    device = Device(TOKEN, "127.0.0.1")
    device.write("T", 1, qos=1)
    device.write_many({"T": 2}, qos=1)
    assert device.pending == 2


def test_flush_with_nothing_waiting_returns_at_once() -> None:
    device = Device(TOKEN, "127.0.0.1", qos=1)
    device.flush(0)  # a zero timeout raises DeviceTimeoutError if anything waited
    assert device.pending == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"qos": 2}, {"qos": -1}, {"outbox_limit": 0}, {"outbox_limit": 65_001}, {"outbox_timeout": -1}],
)
def test_bad_delivery_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Device(TOKEN, **kwargs)  # type: ignore[arg-type]


def test_a_bad_qos_per_call_is_refused() -> None:
    device = Device(TOKEN)
    with pytest.raises(ValueError, match="qos must be 0 or 1"):
        device.write("T", 1, qos=2)


def test_a_refused_value_leaves_the_outbox_without_counting_as_acknowledged() -> None:
    outbox = Outbox(10, 0.0)
    for n in range(3):
        outbox.put("ds/T", str(n).encode())
    first, second, third = outbox.unsubmitted()
    outbox.submitted(first, 1)
    outbox.submitted(second, 2)
    assert outbox.acked(1) is first
    assert outbox.acked(2, success=False) is second  # an MQTT 5 PUBACK with a failure reason
    assert outbox.acked(2) is None  # already gone
    assert (len(outbox), outbox.acknowledged) == (1, 1)
    outbox.drop(third)  # never handed to paho (too large for the server)
    assert (len(outbox), outbox.needs_submit) == (0, False)
