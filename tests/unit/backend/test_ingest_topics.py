"""The ingest reads Blynk's device topics from the broker's one table (broker.topics.Uplink and
Downlink): a handler for every uplink, each uplink topic dispatched to its own handler, and
subscriptions that take every uplink and no downlink. Adding a topic to the table without a
handler fails here. The broker's side (its ACL accepts exactly the table's uplinks) is in
tests/unit/broker/test_broker_topics.py."""

from __future__ import annotations

import pytest

from backend.devices.context import DeviceServices
from backend.devices.data import DataService
from backend.devices.latest import LatestValues
from backend.devices.registry import DeviceInfo, DeviceRegistry
from backend.history.writer import HistoryWriter
from backend.ingest.service import SUBSCRIPTIONS, IngestService
from backend.settings import Settings
from backend.transport.mqtt import Message
from broker.topics import Downlink, TopicFilter, Uplink
from tests.support.topics import example

DEVICE = 7


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | str]] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self.messages.append((topic, payload))


def ingest(published: Published) -> IngestService:
    """An ingest without a database whose device 7 is in the registry's cache."""
    registry = DeviceRegistry(None, ttl=60)  # type: ignore[arg-type]  # nothing is loaded from a pool
    data = DataService(LatestValues(None), HistoryWriter(None), published)  # type: ignore[arg-type]
    service = IngestService(
        registry,
        data,
        DeviceServices.build(None, data, Settings()),  # type: ignore[arg-type]  # no database
    )
    registry.remember(DeviceInfo(DEVICE, "d7", 1, 1, "T"))
    return service


def test_every_uplink_of_the_table_has_an_ingest_handler() -> None:
    assert set(ingest(Published()).handlers) == set(Uplink)


@pytest.mark.parametrize("uplink", list(Uplink))
async def test_each_uplink_topic_reaches_its_own_handler(uplink: Uplink) -> None:
    service = ingest(Published())
    calls: list[tuple[Uplink, int, tuple[str, ...], bytes]] = []
    for kind in service.handlers:

        async def record(device: DeviceInfo, names: tuple[str, ...], payload: bytes, kind: Uplink = kind) -> None:
            calls.append((kind, device.id, names, payload))

        service.handlers[kind] = record
    topic, names = example(uplink.pattern)
    await service.handle([Message(f"d/{DEVICE}/{topic}", b"payload", 1, False)])
    assert calls == [(uplink, DEVICE, names, b"payload")]


@pytest.mark.parametrize("topic", ["ds", "ds/", "ds/Temp/other", "downlink/ds/Temp", "get/utc", ""])
async def test_a_topic_outside_the_table_is_reported_to_the_device(topic: str) -> None:
    published = Published()
    service = ingest(published)
    await service.handle([Message(f"d/{DEVICE}/{topic}", b"1", 1, False)])
    assert published.messages == [(f"d/{DEVICE}/downlink/diag", f"{topic}: not supported by this server yet".encode())]


def test_the_ingest_subscribes_to_every_uplink_once_and_to_no_downlink() -> None:
    filters = [TopicFilter(value) for value in SUBSCRIPTIONS]
    for uplink in Uplink:
        topic = f"d/{DEVICE}/{example(uplink.pattern)[0]}"
        assert len([f for f in filters if f.matches(topic)]) == 1, uplink
    for downlink in Downlink:
        topic = f"d/{DEVICE}/{example(downlink.pattern)[0]}"
        assert not [f for f in filters if f.matches(topic)], downlink
