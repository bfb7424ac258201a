"""Routing of downlinks to handlers and queues, without a broker."""

from __future__ import annotations

import logging
import threading

import pytest

from device_sdk import ConnectionLostError, DeviceTimeoutError, Downlink, NotConnectedError
from device_sdk._dispatch import Dispatcher


def test_downlink_views() -> None:
    downlink = Downlink("downlink/ds/Set Temperature", b"21.5")
    assert downlink.kind == "ds/Set Temperature"
    assert downlink.datastream == "Set Temperature"
    assert downlink.text == "21.5"
    assert Downlink("downlink/reboot", b"").datastream is None
    assert Downlink("downlink/ds/", b"").datastream is None
    assert Downlink("downlink/ds/Color", b"1\x002\x003").values == ["1", "2", "3"]
    assert Downlink("downlink/ds/X", b"\xff").text == "\ufffd"
    assert downlink.received_at.tzinfo is not None


def test_write_handlers_get_the_value_then_any_write_handlers() -> None:
    dispatch, calls = Dispatcher(), list[object]()
    dispatch.add_write("Power", lambda value: calls.append(("power", value)))
    dispatch.add_write("Power", lambda value: calls.append(("power2", value)))
    dispatch.add_write("Other", lambda value: calls.append(("other", value)))
    dispatch.add(dispatch.any_writes, lambda name, value: calls.append(("any", name, value)))
    dispatch.message("downlink/ds/Power", b"1")
    assert calls == [("power", "1"), ("power2", "1"), ("any", "Power", "1")]


def test_a_failing_handler_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    dispatch, calls = Dispatcher(), list[object]()

    def broken(value: str) -> None:
        raise RuntimeError("boom")

    dispatch.add_write("Power", broken)
    dispatch.add(dispatch.any_writes, lambda name, value: calls.append(name))
    with caplog.at_level(logging.ERROR, logger="device_sdk"):
        dispatch.message("downlink/ds/Power", b"1")
    assert calls == ["Power"]
    assert "boom" in caplog.text


def test_system_downlinks_reach_their_handlers() -> None:
    dispatch, calls = Dispatcher(), list[object]()
    dispatch.add(dispatch.reboots, lambda: calls.append("reboot"))
    dispatch.add(dispatch.reconfigures, lambda: calls.append("reconfigure"))
    dispatch.add(dispatch.diags, lambda text: calls.append(("diag", text)))
    dispatch.add(dispatch.downlinks, lambda d: calls.append(d.kind))
    for topic, payload in [("downlink/reboot", b""), ("downlink/reconfigure", b""), ("downlink/diag", b"slow down")]:
        dispatch.message(topic, payload)
    assert calls == ["reboot", "reboot", "reconfigure", "reconfigure", ("diag", "slow down"), "diag"]


def test_ping_is_recorded() -> None:
    dispatch = Dispatcher()
    assert dispatch.last_ping is None
    dispatch.message("downlink/ping", b"")
    assert dispatch.last_ping is not None


def test_reboot_without_a_handler_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="device_sdk"):
        Dispatcher().message("downlink/reboot", b"")
    assert "on_reboot" in caplog.text


def test_connection_events_reach_their_handlers() -> None:
    dispatch, calls = Dispatcher(), list[object]()
    dispatch.add(dispatch.connects, lambda: calls.append("up"))
    dispatch.add(dispatch.disconnects, lambda error: calls.append(error))
    dispatch.connected()
    lost = ConnectionLostError("gone")
    dispatch.disconnected(lost)
    dispatch.disconnected(None)
    assert calls == ["up", lost, None]


def test_handlers_must_be_callable() -> None:
    dispatch = Dispatcher()
    with pytest.raises(TypeError):
        dispatch.add(dispatch.reboots, "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dispatch.add_write("Power", None)  # type: ignore[arg-type]


# -- DownlinkQueue --------------------------------------------------------------------------


def test_every_open_queue_gets_every_downlink_in_order() -> None:
    dispatch = Dispatcher()
    first, second = dispatch.open_queue(10), dispatch.open_queue(10)
    dispatch.message("downlink/ds/A", b"1")
    dispatch.message("downlink/ds/B", b"2")
    for queue in (first, second):
        assert [queue.get(timeout=1).kind, queue.get(timeout=1).kind] == ["ds/A", "ds/B"]


def test_a_closed_queue_stops_receiving_and_ends_iteration() -> None:
    dispatch = Dispatcher()
    queue = dispatch.open_queue(10)
    dispatch.message("downlink/ds/A", b"1")
    queue.close()
    dispatch.message("downlink/ds/B", b"2")
    assert [d.kind for d in queue] == ["ds/A"]
    assert queue.closed
    with pytest.raises(NotConnectedError):
        queue.get(timeout=1)
    queue.close()  # idempotent


def test_closing_all_queues_wakes_a_blocked_reader() -> None:
    dispatch = Dispatcher()
    queue = dispatch.open_queue(10)
    received: list[object] = []
    reader = threading.Thread(target=lambda: received.extend(queue))
    reader.start()
    dispatch.message("downlink/ds/A", b"1")
    dispatch.close_queues()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert [d.kind for d in received] == ["ds/A"]  # type: ignore[attr-defined]


def test_get_times_out() -> None:
    queue = Dispatcher().open_queue(10)
    with pytest.raises(DeviceTimeoutError):
        queue.get(timeout=0.01)
    with pytest.raises(TimeoutError):  # DeviceTimeoutError is a TimeoutError
        queue.wait_for_write("Power", timeout=0.01)


def test_wait_for_write_skips_other_messages() -> None:
    dispatch = Dispatcher()
    with dispatch.open_queue(10) as queue:
        dispatch.message("downlink/ping", b"")
        dispatch.message("downlink/ds/Other", b"0")
        dispatch.message("downlink/ds/Power", b"1")
        assert queue.wait_for_write("Power", timeout=1) == "1"
    assert queue.closed


def test_a_full_queue_drops_new_messages_without_blocking(caplog: pytest.LogCaptureFixture) -> None:
    dispatch = Dispatcher()
    queue = dispatch.open_queue(2)
    with caplog.at_level(logging.WARNING, logger="device_sdk"):
        for n in range(5):
            dispatch.message("downlink/ds/N", str(n).encode())
    assert [queue.get(timeout=1).text for _ in range(2)] == ["0", "1"]
    with pytest.raises(DeviceTimeoutError):
        queue.get(timeout=0.01)
    assert "full" in caplog.text
