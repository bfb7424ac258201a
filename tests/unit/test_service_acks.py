"""The app acknowledges QoS 1 messages only when told, and always in the order they came."""

from __future__ import annotations

import paho.mqtt.client as paho

from backend.transport.mqtt import ServiceClient
from tests.support.service_acks import note_pubacks


def client() -> tuple[ServiceClient, list[int]]:
    """A client whose PUBACKs are noted (packet ids in the order written), not sent."""
    service = ServiceClient("127.0.0.1", 1, "svc", "pw", client_id="test", subscriptions=[])
    return service, note_pubacks(service)


def received(service: ServiceClient, mid: int, qos: int = 1) -> int | None:
    message = paho.MQTTMessage(mid, b"d/1/ds/T")
    message.qos = qos
    return service._take(message)


def test_acknowledgements_wait_for_every_earlier_message() -> None:
    service, sent = client()
    first, second, third = (received(service, mid) for mid in (11, 12, 13))
    service.done(third)
    service.done(second)
    assert sent == [] and service.unacknowledged == 3  # 11 is not done: nothing may go yet
    service.done(first)
    assert sent == [11, 12, 13] and service.unacknowledged == 0
    service.done(first)  # twice: ignored
    assert sent == [11, 12, 13]


def test_qos0_needs_no_acknowledgement_and_clean_clients_let_paho_ack() -> None:
    service, _ = client()
    assert received(service, 5, qos=0) is None
    clean = ServiceClient("127.0.0.1", 1, "svc", "pw", client_id="cli", subscriptions=[], clean_session=True)
    assert clean._take(paho.MQTTMessage(7, b"t")) is None


def test_receipts_of_an_earlier_connection_are_never_acknowledged() -> None:
    """Packet ids restart with each connection; the broker sends the old messages again."""
    service, sent = client()
    old = received(service, 1)
    service._on_connect(service._client, None, None, paho.ReasonCode(paho.PacketTypes.CONNACK, identifier=0))
    new = received(service, 1)
    service.done(old)
    assert sent == []
    service.done(new)
    assert sent == [1]


def test_a_message_not_handed_over_blocks_later_acknowledgements() -> None:
    service, sent = client()
    kept, dropped, later = (received(service, mid) for mid in (1, 2, 3))
    service._forget(dropped)  # e.g. taken while the app was stopping
    service.done(kept)
    service.done(later)
    assert sent == [1]  # acknowledging 3 would skip 2, which the broker must keep


def test_a_committed_batch_is_acknowledged_in_one_piece() -> None:
    """100 messages committed together: their PUBACKs go to paho as one piece, in order (one
    write and one wake-up of paho's thread, not a hundred)."""
    service = ServiceClient("127.0.0.1", 1, "svc", "pw", client_id="test", subscriptions=[])
    pieces: list[bytes] = []

    def queued(command: int, packet: bytes, *_rest: object) -> paho.MQTTErrorCode:
        pieces.append(bytes(packet))
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    service._client._packet_queue = queued  # type: ignore[method-assign]
    receipts = [received(service, mid) for mid in range(1, 101)]
    service.done_all([r for r in receipts if r is not None])
    assert pieces == [b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in range(1, 101))]
