"""What the broker publishes itself: ping round trips, vitals, transport in presence."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from _broker_harness import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    Paho,
    Raw,
    connect_packet,
    connected_raw,
    eventually,
    offline_reason,
    ours,
    packet,
    parse_publish,
    presence_watcher,
    publish_packet,
    subscribe_packet,
    token,
)

from broker import _delivery


async def backend(paho: Callable[..., Paho], *filters: str) -> Paho:
    client = await paho(client_id="backend", username=SERVICE_USER, password=SERVICE_PASSWORD).connect()
    await client.subscribe(*filters, qos=1)
    return client


def payloads(client: Paho, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in list(client.messages) if m.topic == topic]


# ---- ping ----------------------------------------------------------------------------------


async def test_ping_reaches_an_unsubscribed_device_at_qos1_and_reports_the_round_trip(
    paho: Callable[..., Paho],
) -> None:
    service = await backend(paho, "sys/ping/#")
    device = await paho(username="device", password=token(1)).connect()
    service.client.publish("d/1/downlink/ping", b"")
    ping = await device.received("downlink/ping")
    assert (ping.qos, ping.payload) == (1, b"")
    await eventually(lambda: payloads(service, "sys/ping/1"), message="sys/ping/1")
    (report,) = payloads(service, "sys/ping/1")
    assert set(report) == {"ts", "rtt_ms"}
    assert isinstance(report["rtt_ms"], float) and report["rtt_ms"] >= 0 and isinstance(report["ts"], int)


async def test_ping_is_delivered_once_and_at_qos1_to_a_subscribed_device(paho: Callable[..., Paho]) -> None:
    service = await backend(paho, "sys/ping/#")
    device = await paho(username="device", password=token(1)).connect()
    await device.subscribe("downlink/#", qos=0)
    service.client.publish("d/1/downlink/ping", b"")
    service.client.publish("d/1/downlink/ds/After", b"1")  # ordered after the ping
    await device.received("downlink/ds/After")
    await eventually(lambda: payloads(service, "sys/ping/1"), message="sys/ping/1")
    pings = [m for m in device.messages if m.topic == "downlink/ping"]
    assert [m.qos for m in pings] == [1]


async def test_ping_without_puback_times_out(
    paho: Callable[..., Paho], raw: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_delivery, "PING_TIMEOUT", 0.2)  # 10 s in production
    service = await backend(paho, "sys/ping/#")
    device = await connected_raw(raw, device_id=2)
    service.client.publish("d/2/downlink/ping", b"")
    publish = await device.read_packet()
    assert publish[0] == 0x32 and parse_publish(publish)[0] == "downlink/ping"  # QoS 1; never acknowledged
    await eventually(lambda: payloads(service, "sys/ping/2"), message="sys/ping/2")
    (report,) = payloads(service, "sys/ping/2")
    assert report["rtt_ms"] is None and report["timeout"] is True and "offline" not in report


async def test_ping_of_an_offline_device_is_answered_at_once(paho: Callable[..., Paho]) -> None:
    service = await backend(paho, "sys/ping/#")
    service.client.publish("d/3/downlink/ping", b"")
    await eventually(lambda: payloads(service, "sys/ping/3"), message="sys/ping/3")
    (report,) = payloads(service, "sys/ping/3")
    assert (report["rtt_ms"], report["timeout"], report["offline"]) == (None, True, True)


# ---- vitals and transport ------------------------------------------------------------------


async def test_vitals_count_whole_packets_both_ways(clients: list[Any]) -> None:
    async with ours(vitals_interval=0.2) as running:

        def build(**kwargs: Any) -> Paho:
            client = Paho(running.port, **kwargs)
            clients.append(client)
            return client

        service = await backend(build, "sys/vitals/#", "sys/presence/#")
        device = await running_raw(running.port, clients)
        connect = connect_packet(username="device", password=token(4))
        subscribe = subscribe_packet(1, "downlink/#")
        uplinks = [publish_packet("ds/T", b"21.5"), publish_packet("ds/H", b"40")]
        await device.send(connect)
        assert await device.read_packet() == b"\x20\x02\x00\x00"
        await device.send(subscribe)
        suback = await device.read_packet()
        for uplink in uplinks:
            await device.send(uplink)
        service.client.publish("d/4/downlink/ds/Power", b"1")
        downlink = await device.read_packet()
        expected = {
            "msgs_in": 2,
            "msgs_out": 1,
            "bytes_in": len(connect) + len(subscribe) + sum(map(len, uplinks)),
            "bytes_out": 4 + len(suback) + len(downlink),
        }

        def latest_matches() -> bool:
            reports = payloads(service, "sys/vitals/4")
            return bool(reports) and {k: reports[-1][k] for k in expected} == expected

        await eventually(latest_matches, message="a vitals report with the exact totals")
        report = payloads(service, "sys/vitals/4")[-1]
        assert set(report) == {"ts", *expected, "connected_for_s"} and report["connected_for_s"] >= 0
        online = payloads(service, "sys/presence/4")[0]
        assert online["online"] is True and online["transport"] == "tcp"
        await device.send(packet(0xE0, b""))  # DISCONNECT: 2 more bytes in
        assert await offline_reason(service, 4) == "disconnect"
        vitals = payloads(service, "sys/presence/4")[-1]["vitals"]
        assert isinstance(vitals.pop("connected_for_s"), int)
        assert vitals == {**expected, "bytes_in": expected["bytes_in"] + 2}
        assert {m.topic for m in service.messages} <= {"sys/vitals/4", "sys/presence/4"}  # none for services


async def running_raw(port: int, clients: list[Any]) -> Raw:
    client = await Raw.open(port)
    clients.append(client)
    return client


async def test_offline_presence_carries_vitals(paho: Callable[..., Paho]) -> None:
    watcher = await presence_watcher(paho)
    device = await paho(username="device", password=token(5)).connect()
    await device.publish("ds/T", b"1", qos=1)
    await device.close()
    assert await offline_reason(watcher, 5) == "disconnect"
    vitals = payloads(watcher, "sys/presence/5")[-1]["vitals"]
    assert set(vitals) == {"msgs_in", "msgs_out", "bytes_in", "bytes_out", "connected_for_s"}
    assert vitals["msgs_in"] == 1 and vitals["msgs_out"] == 0 and vitals["bytes_in"] > vitals["bytes_out"] > 0
