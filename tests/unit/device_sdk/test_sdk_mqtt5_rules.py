"""device_sdk's MQTT 5 rules (device_sdk._mqtt5): the size it counts a PUBLISH at, against the
broker's own MQTT 5 encoder, and what each server DISCONNECT reason makes the device do."""

from __future__ import annotations

import pytest

from broker import mqtt5
from device_sdk._mqtt5 import Next, after_disconnect, publish_size


@pytest.mark.parametrize("qos", [0, 1])
@pytest.mark.parametrize("length", [0, 1, 100, 110, 111, 112, 113, 120, 1000, 1010, 16_360, 16_370, 16_380, 16_400])
def test_publish_size_is_the_encoded_packets_length(qos: int, length: int) -> None:
    topic, payload = "ds/Temperature", b"x" * length  # lengths cross the 1- and 2-byte length fields
    encoded = mqtt5.encode(mqtt5.Publish(topic, payload, qos, packet_id=1 if qos else None))
    assert publish_size(topic, payload, qos) == len(encoded)


def test_a_non_ascii_topic_counts_its_utf8_bytes() -> None:
    topic = "ds/Température"
    assert publish_size(topic, b"1", 0) == len(mqtt5.encode(mqtt5.Publish(topic, b"1", 0)))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0x87, Next.STOP),  # not authorized: the token was revoked
        (0x8E, Next.SLOW_DOWN),  # session taken over
        (0x96, Next.SLOW_DOWN),  # message rate too high
        (0x97, Next.SLOW_DOWN),  # quota exceeded
        (0x89, Next.SLOW_DOWN),  # server busy
        (0x9F, Next.SLOW_DOWN),  # connection rate exceeded
        (0x8B, Next.RECONNECT),  # server shutting down
        (0x8D, Next.RECONNECT),  # keep-alive timeout
        (0x95, Next.RECONNECT),  # packet too large
        (0x00, Next.RECONNECT),
        (None, Next.RECONNECT),  # no DISCONNECT: the network failed
    ],
)
def test_what_a_server_disconnect_makes_the_device_do(code: int | None, expected: Next) -> None:
    assert after_disconnect(code) is expected
