"""The ingest's one dispatch (IngestService.handle) without a database: runs of plain values
stored as batches, anything else handled in its place, waiting for room in the history queue,
and never storing with a stale template. The whole path, with the database and the broker, runs in
tests/integration/backend/test_ingest.py."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

import backend.ingest.service as service_module
from backend.devices.context import DeviceServices
from backend.devices.data import DataService
from backend.devices.latest import LatestValues
from backend.devices.registry import DeviceInfo, DeviceRegistry
from backend.history.writer import HistoryWriter
from backend.ingest.service import IngestService
from backend.settings import Settings
from backend.templates.values import DatastreamSpec, DatastreamType
from backend.transport.mqtt import Message
from broker.topics import Uplink

TEMP = DatastreamSpec(pin=0, name="Temp", type=DatastreamType.DOUBLE, min=-40.0, max=85.0, save_raw=True)
LEVEL = DatastreamSpec(pin=1, name="Level", type=DatastreamType.INTEGER, min=0.0, max=10.0)  # rollups only
NOTE = DatastreamSpec(pin=2, name="Note", type=DatastreamType.STRING, save_raw=True)


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | str]] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self.messages.append((topic, payload))


class World:
    """An ingest whose devices 1 and 2 are cached (device 3 is known but not cached)."""

    def __init__(self, queue_rows: int = 1000) -> None:
        self.registry = DeviceRegistry(None, ttl=60)  # type: ignore[arg-type]  # nothing is loaded from a pool
        self.latest = LatestValues(None)  # type: ignore[arg-type]
        self.history = HistoryWriter(None, queue_rows=queue_rows)  # type: ignore[arg-type]
        self.published = Published()
        self.data = DataService(self.latest, self.history, self.published)
        self.now = 1000.0  # the ingest's clock, moved by the tests
        self.ingest = IngestService(
            self.registry,
            self.data,
            DeviceServices.build(None, self.data, Settings()),  # type: ignore[arg-type]  # no database
            clock=lambda: self.now,
        )
        for device_id in (1, 2):
            self.cache(device_id, TEMP, LEVEL, NOTE)
            self.latest._loaded.add(device_id)
            self.latest._values[device_id] = {}

        async def get(device_id: int) -> DeviceInfo | None:  # what the registry loads from the database
            if device_id == 3:
                self.cache(3, TEMP)
            return self.registry.cached(device_id)

        self.registry.get = get  # type: ignore[method-assign]

    def cache(self, device_id: int, *specs: DatastreamSpec) -> None:
        info = DeviceInfo(
            device_id, f"d{device_id}", 1, 1, "T", by_name={s.name: s for s in specs}, by_pin={s.pin: s for s in specs}
        )
        self.registry.remember(info)

    def rows(self) -> list[tuple[object, ...]]:
        return [(r[0], r[1], r[3], r[4], r[5]) for r in self.history._queue.rows]  # all but the time

    def diags(self) -> list[tuple[str, bytes | str]]:
        return [(topic, payload) for topic, payload in self.published.messages if topic.endswith("/downlink/diag")]


def values(*pairs: tuple[str, bytes]) -> list[Message]:
    return [Message(topic, payload, 1, False, receipt=i) for i, (topic, payload) in enumerate(pairs, 1)]


async def test_plain_values_are_stored_at_once_in_order() -> None:
    world = World()
    batch = values(
        ("d/1/ds/Temp", b"21.5"),
        ("d/2/ds/Temp", b"999"),
        ("d/1/ds/Level", b"7"),
        ("d/1/ds/Note", b"hello"),
        ("d/1/ds/Temp", b"22"),
    )
    await world.ingest.handle(batch)
    assert world.rows() == [
        (1, 0, 21.5, None, True),
        (2, 0, 85.0, None, True),  # clamped to max
        (1, 1, 7.0, None, False),
        (1, 2, None, "hello", True),
        (1, 0, 22.0, None, True),
    ]
    latest = await world.latest.get_all(1)
    assert {pin: v.value for pin, v in latest.items()} == {0: "22.0", 1: "7", 2: "hello"}  # the newest
    assert (await world.latest.get(2, 0)).value == "85.0"  # type: ignore[union-attr]
    assert set(world.ingest.services.lifecycle._seen) == {1, 2}
    assert world.ingest.processed == 5 and world.published.messages == []


FIRST, LAST = (1, 0, 20.0, None, True), (2, 0, 30.0, None, True)


@pytest.mark.parametrize(
    ("topic", "payload", "rows", "diag"),
    [
        ("d/1/ds/Temp", b"warm", [FIRST, LAST], "ds/Temp: Temp expects a number, got 'warm'"),
        ("d/1/ds/Nope", b"1", [FIRST, LAST], "ds/Nope: no datastream named 'Nope' in template 'T'"),
        ("d/1/ds/Temp", b"\xff", [FIRST, LAST], "ds/Temp: value is not UTF-8 text"),
        ("d/1/ds/Level", b"1.0", [FIRST, (1, 1, 1.0, None, False), LAST], None),  # the general branch takes it
        ("d/3/ds/Temp", b"1", [FIRST, (3, 0, 1.0, None, True), LAST], None),  # not in the cache: its handler loads it
        ("d/\u00b2/ds/Temp", b"1", [FIRST, LAST], None),  # "²" is a digit to str.isdigit, not to int: ignored
    ],
)
async def test_every_message_is_handled_in_its_place(
    topic: str, payload: bytes, rows: list[tuple[object, ...]], diag: str | None
) -> None:
    world = World()
    await world.ingest.handle(values(("d/1/ds/Temp", b"20"), (topic, payload), ("d/2/ds/Temp", b"30")))
    assert world.rows() == rows
    assert world.diags() == ([] if diag is None else [("d/1/downlink/diag", diag.encode())])
    assert world.ingest.processed == 3


async def test_other_uplinks_go_to_their_handler_after_the_values_before_them() -> None:
    world = World()
    seen: list[tuple[tuple[str, ...], bytes, int]] = []

    async def event(device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        seen.append((names, payload, len(world.rows())))

    world.ingest.handlers[Uplink.EVENT] = event
    await world.ingest.handle(values(("d/1/ds/Temp", b"20"), ("d/1/event/alarm", b"hot"), ("d/2/ds/Temp", b"30")))
    assert seen == [(("alarm",), b"hot", 1)]  # the value before it was stored first
    assert world.rows() == [FIRST, LAST]


async def test_a_run_waits_for_room_in_the_history_queue() -> None:
    world = World(queue_rows=4)
    handling = asyncio.create_task(world.ingest.handle(values(*[("d/1/ds/Temp", str(i).encode()) for i in range(6)])))
    for _ in range(100):  # a bounded wait
        await asyncio.sleep(0.001)
    assert not handling.done() and len(world.rows()) == 4  # full: it waits for the writer
    taken = world.history._queue.take(3)
    await asyncio.wait_for(handling, 5)
    assert [r[3] for r in taken] + [r[2] for r in world.rows()] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # in order
    assert world.history.accepted == 6 and world.ingest.processed == 6


async def test_a_changed_template_is_used_as_soon_as_the_registry_forgets_the_device() -> None:
    world = World()
    await world.ingest.handle(values(("d/1/ds/Temp", b"50")))
    narrower = DatastreamSpec(pin=0, name="Temp", type=DatastreamType.DOUBLE, min=0.0, max=40.0, save_raw=True)
    world.registry.invalidate(1)  # a change notice: the template was edited
    world.cache(1, narrower)
    await world.ingest.handle(values(("d/1/ds/Temp", b"50")))
    assert world.rows()[-1] == (1, 0, 40.0, None, True)  # the new max, at once

    wider = DatastreamSpec(pin=0, name="Temp", type=DatastreamType.DOUBLE, min=0.0, max=45.0, save_raw=True)
    world.cache(1, wider)  # a refresh after the registry's time to live, without a notice
    await world.ingest.handle(values(("d/1/ds/Temp", b"50")))
    assert world.rows()[-1] == (1, 0, 40.0, None, True)  # what the ingest found out is reused a while...
    world.now += service_module.ROUTES_SECONDS
    await world.ingest.handle(values(("d/1/ds/Temp", b"50")))
    assert world.rows()[-1] == (1, 0, 45.0, None, True)  # ...for at most ROUTES_SECONDS


async def test_watching_consoles_see_each_value_with_its_text() -> None:
    world = World()
    with world.data.live.subscribe([1]) as watching:
        await world.ingest.handle(values(("d/1/ds/Temp", b"19.50"), ("d/2/ds/Temp", b"3")))
        event = await watching.next()
    assert (event["pin"], event["value"], event["origin"]) == (0, "19.5", "device")
    assert isinstance(event["ts"], int) and watching.pending == 0  # device 2 is not watched
    assert isinstance((await world.latest.get(1, 0)).updated_at, datetime)  # type: ignore[union-attr]
