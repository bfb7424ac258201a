"""Mount, device ACL, diag, always-delivered downlinks, retained messages, wills."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _broker_harness import SERVICE_PASSWORD, SERVICE_USER, Paho, connect_packet, eventually, token


async def backend_and_device(paho: Callable[..., Paho], device_id: int = 1) -> tuple[Paho, Paho]:
    backend = await paho(client_id="backend", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await backend.subscribe("d/#", qos=1)
    device = await paho(username="device", password=token(device_id)).connect()
    return backend, device


async def test_uplink_is_mounted_and_downlink_unmounted(paho: Callable[..., Paho]) -> None:
    backend, device = await backend_and_device(paho)
    assert await device.subscribe("downlink/#") == [0]
    await device.publish("ds/Set Temp", b"21.5", qos=1)
    assert (await backend.received("d/1/ds/Set Temp")).payload == b"21.5"
    await backend.publish("d/1/downlink/ds/Power", b"1")
    assert (await device.received("downlink/ds/Power")).payload == b"1"
    assert all(not t.startswith("d/") for t in device.topics())


async def test_foreign_topic_publish_is_dropped_with_diag(paho: Callable[..., Paho]) -> None:
    backend, device = await backend_and_device(paho)
    await device.publish("foo/bar", b"x", qos=1)  # PUBACK still arrives
    diag = await device.received("downlink/diag")
    assert diag.payload == b'publish to "foo/bar" refused: not a Blynk uplink topic'
    assert diag.qos == 0
    await device.publish("d/2/ds/Temp", b"spoof", qos=1)
    await eventually(lambda: device.topics().count("downlink/diag") == 2)
    await device.publish("ds/Temp", b"ok", qos=1)  # connection kept
    await backend.received("d/1/ds/Temp")
    assert not any(t.startswith(("foo", "d/1/foo", "d/2", "d/1/d/2")) for t in backend.topics())


async def test_foreign_subscribe_gets_0x80_others_granted(paho: Callable[..., Paho]) -> None:
    backend, device = await backend_and_device(paho)
    codes = await device.subscribe("downlink/ds/#", "#", "sys/presence/#", "downlink/+/x", "d/2/downlink/#", qos=1)
    assert codes == [1, 0x80, 0x80, 0x80, 0x80]
    await backend.publish("d/2/downlink/ds/Power", b"other")
    await backend.publish("d/1/downlink/ds/Power", b"mine")
    assert (await device.received("downlink/ds/Power")).payload == b"mine"
    assert device.topics() == ["downlink/ds/Power"]


async def test_always_delivered_downlinks_without_subscription(paho: Callable[..., Paho]) -> None:
    backend, device = await backend_and_device(paho)
    for relative in ["downlink/redirect", "downlink/ota/json", "downlink/diag"]:
        await backend.publish(f"d/1/{relative}", relative.encode(), qos=1)
        message = await device.received(relative)
        assert message.qos == 0
    await backend.publish("d/1/downlink/ds/Power", b"1", qos=1)
    await backend.publish("d/1/downlink/diag", b"end")
    await eventually(lambda: device.topics().count("downlink/diag") == 2)
    assert "downlink/ds/Power" not in device.topics()


async def test_always_delivered_not_duplicated_when_subscribed(paho: Callable[..., Paho]) -> None:
    backend, device = await backend_and_device(paho)
    await device.subscribe("downlink/#", qos=1)
    await backend.publish("d/1/downlink/redirect", b"mqtts://x:8883", qos=1)
    await backend.publish("d/1/downlink/ds/End", b"1", qos=1)
    await device.received("downlink/ds/End")
    assert device.topics() == ["downlink/redirect", "downlink/ds/End"]


async def test_retained_ota_delivered_on_connect_only_to_its_device(paho: Callable[..., Paho]) -> None:
    backend = await paho(client_id="backend", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await backend.publish("d/1/downlink/ota/json", b'{"url":"https://x/fw?sig=SECRET"}', qos=1, retain=True)
    other = await paho(username="device", password=token(2)).connect()
    await other.subscribe("downlink/#")
    owner = await paho(username="device", password=token(1)).connect()
    offer = await owner.received("downlink/ota/json")
    assert offer.retain and b"SECRET" in offer.payload
    await backend.publish("d/2/downlink/ds/End", b"1")
    await other.received("downlink/ds/End")
    assert other.topics() == ["downlink/ds/End"]


async def test_retained_on_subscribe_only_matching_own_filter(paho: Callable[..., Paho]) -> None:
    backend = await paho(client_id="backend", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    for topic in ["d/1/downlink/ds/A", "d/1/downlink/meta/B", "d/2/downlink/ds/A"]:
        await backend.publish(topic, topic.encode(), qos=1, retain=True)
    device = await paho(username="device", password=token(1)).connect()
    await device.subscribe("downlink/ds/#")
    message = await device.received("downlink/ds/A")
    assert message.payload == b"d/1/downlink/ds/A" and message.retain
    await device.subscribe("downlink/meta/B")
    await device.received("downlink/meta/B")
    assert device.topics() == ["downlink/ds/A", "downlink/meta/B"]
    watcher = await paho(client_id="w", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await watcher.subscribe("d/+/downlink/ds/A")
    await eventually(lambda: len(watcher.messages) == 2)  # services may read every device's


async def test_unsubscribe_stops_delivery(paho: Callable[..., Paho]) -> None:
    backend, device = await backend_and_device(paho)
    await device.subscribe("downlink/ds/#")
    await device.unsubscribe("downlink/ds/#")
    await backend.publish("d/1/downlink/ds/A", b"1", qos=1)
    await backend.publish("d/1/downlink/diag", b"end")
    await device.received("downlink/diag")
    assert "downlink/ds/A" not in device.topics()


async def test_device_will_is_mounted(paho: Callable[..., Paho], raw: Callable[[], Any]) -> None:
    backend, _ = await backend_and_device(paho, device_id=2)
    client = await raw()
    await client.send(connect_packet(username="device", password=token(1), will=("ds/Online", b"0")))
    assert await client.read_packet() == b"\x20\x02\x00\x00"
    client.writer.transport.abort()  # ungraceful
    assert (await backend.received("d/1/ds/Online")).payload == b"0"


async def test_device_will_on_foreign_topic_is_dropped_with_diag(
    paho: Callable[..., Paho], raw: Callable[[], Any]
) -> None:
    backend, _ = await backend_and_device(paho, device_id=2)
    await backend.subscribe("#", qos=1)
    client = await raw()
    await client.send(connect_packet(username="device", password=token(1), will=("evil/topic", b"0")))
    assert await client.read_packet() == b"\x20\x02\x00\x00"
    diag = await client.read_packet()
    assert b"downlink/diag" in diag and b'last will topic "evil/topic" refused' in diag
    client.writer.transport.abort()
    offline = await backend.received("sys/presence/1")
    await eventually(lambda: backend.topics().count("sys/presence/1") == 2)
    assert offline is not None and not any("evil" in t for t in backend.topics())
