"""Delivery QoS is the lower of the publish's and the subscription's ([MQTT-3.8.4-6] in 3.1.1,
§3.8.4 in MQTT 5; issue #18): amqtt delivered at the subscription's QoS, so a QoS 0 publish
reached a QoS 1 subscriber as a QoS 1 PUBLISH it had to acknowledge."""

from __future__ import annotations

from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, Paho, token


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5"])
async def test_a_copy_goes_at_the_lower_of_publish_and_subscription_qos(
    paho: Callable[..., Paho], protocol: int
) -> None:
    subscriber = await paho(
        client_id="sub", username=SERVICE_USER, password=SERVICE_PASSWORD, protocol=protocol
    ).connect()
    assert await subscriber.subscribe("t/high", qos=2) == [2]
    assert await subscriber.subscribe("t/low", qos=0) == [0]
    publisher = await paho(
        client_id="pub", username=SERVICE_USER, password=SERVICE_PASSWORD, protocol=protocol
    ).connect()
    for qos in (0, 1, 2):
        await publisher.publish("t/high", f"{qos}", qos=qos)
        await publisher.publish("t/low", f"{qos}", qos=qos)
        assert (await subscriber.received("t/high")).qos == qos
        assert (await subscriber.received("t/low")).qos == 0
        subscriber.messages.clear()


async def test_a_device_uplink_at_qos_0_reaches_the_service_at_qos_0(paho: Callable[..., Paho]) -> None:
    """The app's ingest subscribes at QoS 1: a device's QoS 0 value comes to it at QoS 0, its
    QoS 1 value at QoS 1 (acknowledged by the ingest, then by the broker to the device)."""
    ingest = await paho(
        client_id="ingest", username=SERVICE_USER, password=SERVICE_PASSWORD, clean_session=False
    ).connect()
    assert await ingest.subscribe("d/#", qos=1) == [1]
    device = await paho(username="device", password=token(1)).connect()
    await device.publish("ds/Temperature", b"21.5", qos=0)
    assert (await ingest.received("d/1/ds/Temperature")).qos == 0
    await device.publish("ds/Humidity", b"40", qos=1)
    assert (await ingest.received("d/1/ds/Humidity")).qos == 1
