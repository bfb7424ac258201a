"""device_sdk at QoS 1: values kept until their PUBACK, sent after a reconnect, in order.

The wire-level tests use :class:`RawBroker`, which holds PUBACKs back and shows each PUBLISH's
DUP flag and packet id; the others use the project's broker (sdk_harness) as the server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from raw_broker import RawBroker
from sdk_harness import DEVICE_ID, FAST, TOKEN, WAIT, Authenticator, BrokerThread, Service

from device_sdk import Device, NotConnectedError
from tests.support.net import wait_for

D = f"d/{DEVICE_ID}"


@pytest.fixture
def raw() -> Iterator[RawBroker]:
    server = RawBroker()
    yield server
    server.close()


def make_device(port: int, **kwargs: object) -> Device:
    options: dict[str, object] = {"backoff": FAST, "qos": 1}
    options.update(kwargs)
    return Device(TOKEN, "127.0.0.1", port, **options)  # type: ignore[arg-type]


def test_unacknowledged_values_are_sent_again_with_dup_and_their_ids_then_new_ones(raw: RawBroker) -> None:
    with make_device(raw.port) as device:
        for n in range(5):
            device.write("Seq", n)
        first = raw.wait_published(5)
        assert [(p.connection, p.payload, p.dup) for p in first] == [(1, str(n).encode(), False) for n in range(5)]
        assert device.pending == 5  # no PUBACK yet

        raw.refuse.set()
        raw.drop()  # the connection dies with five values in flight
        wait_for(lambda: not device.connected, message="the device to notice the loss")
        device.write("Seq", 5)  # offline: kept, not refused
        device.write_many({"Seq": 6})
        assert device.pending == 7

        raw.ack.set()
        raw.refuse.clear()
        device.flush(WAIT)
        assert device.pending == 0

    again = [p for p in raw.published("") if p.connection == 2 and p.topic in ("ds/Seq", "batch_ds")]
    assert [(p.payload, p.dup) for p in again] == [
        *[(str(n).encode(), True) for n in range(5)],  # resent, DUP set
        (b"5", False),
        (b'{"Seq":6}', False),
    ]
    assert [p.packet_id for p in again[:5]] == [p.packet_id for p in first]  # the same packet ids


def test_values_waiting_at_a_redirect_go_to_the_new_server_in_order(raw: RawBroker) -> None:
    second = RawBroker()
    second.ack.set()
    try:
        with make_device(raw.port) as device:
            for n in range(3):
                device.write("Seq", n)
            raw.wait_published(3)
            raw.send("downlink/redirect", f"mqtt://127.0.0.1:{second.port}".encode())
            device.flush(WAIT)
            assert device.endpoint.port == second.port
        assert [(p.payload, p.dup) for p in second.published()] == [(str(n).encode(), False) for n in range(3)]
    finally:
        second.close()


def test_values_written_before_connect_are_sent_once_connected(broker: BrokerThread, service: Service) -> None:
    device = make_device(broker.port)
    for n in range(3):
        device.write("Seq", n)
    assert device.pending == 3
    with pytest.raises(NotConnectedError):
        device.flush(WAIT)  # nothing could ever deliver them: say so instead of waiting
    with device:
        device.flush(WAIT)
        assert [service.expect(f"{D}/ds/Seq") for _ in range(3)] == [b"0", b"1", b"2"]
    assert device.pending == 0


def test_values_written_while_the_broker_is_down_arrive_after_it_restarts(
    broker: BrokerThread, authenticator: Authenticator
) -> None:
    with make_device(broker.port) as device:
        device.write("Seq", 0)
        device.flush(WAIT)
        broker.stop()
        wait_for(lambda: not device.connected, message="the device to notice the broker is gone")
        for n in range(1, 11):
            device.write("Seq", n)
        with pytest.raises(NotConnectedError):
            device.write("Seq", 99, qos=0)  # QoS 0 is unchanged: best effort, refused offline
        authenticator.gate.clear()  # hold the device's login until the observer listens
        broker.start()
        service = Service(broker.port)
        try:
            authenticator.gate.set()
            device.flush(WAIT)
            assert [service.expect(f"{D}/ds/Seq") for _ in range(10)] == [str(n).encode() for n in range(1, 11)]
        finally:
            service.close()


def test_a_full_outbox_makes_a_waiting_write_wait_until_there_is_room(broker: BrokerThread, service: Service) -> None:
    device = make_device(broker.port, outbox_limit=3, outbox_timeout=None)
    for n in range(3):
        device.write("Seq", n)
    waiting = threading.Thread(target=device.write, args=("Seq", 3))
    waiting.start()
    try:
        assert device.pending == 3  # the fourth value waits for room; none was dropped
        with device:
            waiting.join(WAIT)
            assert not waiting.is_alive()
            device.flush(WAIT)
            assert [service.expect(f"{D}/ds/Seq") for _ in range(4)] == [b"0", b"1", b"2", b"3"]
    finally:
        waiting.join(WAIT)
