"""The ingest's batch path (IngestService.handle_ready) without a database: which messages it
stores at once, where it stops for handle() to take over, and that it never stores with a
stale template. The whole path, with the database and the broker, runs in
tests/integration/backend/test_ingest.py."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

import backend.ingest.service as service_module
from backend.devices.context import DeviceServices
from backend.devices.data import DataService
from backend.devices.latest import LatestValues
from backend.devices.registry import DeviceInfo, DeviceRegistry
from backend.history.writer import HistoryWriter
from backend.transport.mqtt import Message
from backend.ingest.service import IngestService
from backend.settings import Settings
from backend.templates.values import DatastreamSpec, DatastreamType

TEMP = DatastreamSpec(pin=0, name="Temp", type=DatastreamType.DOUBLE, min=-40.0, max=85.0, save_raw=True)
LEVEL = DatastreamSpec(pin=1, name="Level", type=DatastreamType.INTEGER, min=0.0, max=10.0)  # rollups only
NOTE = DatastreamSpec(pin=2, name="Note", type=DatastreamType.STRING, save_raw=True)


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | str]] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self.messages.append((topic, payload))


class World:
    """An ingest whose devices 1 and 2 are cached and loaded (device 3 is not cached)."""

    def __init__(self, queue_rows: int = 1000) -> None:
        self.registry = DeviceRegistry(None, ttl=60)  # type: ignore[arg-type]  # nothing is loaded from a pool
        self.latest = LatestValues(None)  # type: ignore[arg-type]
        self.history = HistoryWriter(None, queue_rows=queue_rows)  # type: ignore[arg-type]
        self.published = Published()
        self.data = DataService(self.latest, self.history, self.published)
        self.ingest = IngestService(self.registry, self.data, None, DeviceServices.build(  # type: ignore[arg-type]
            None, self.data, Settings()))  # type: ignore[arg-type]
        for device_id in (1, 2):
            self.cache(device_id, TEMP, LEVEL, NOTE)
            self.latest._loaded.add(device_id)
            self.latest._values[device_id] = {}

    def cache(self, device_id: int, *specs: DatastreamSpec) -> None:
        info = DeviceInfo(device_id, f"d{device_id}", 1, 1, "T", by_name={s.name: s for s in specs},
                          by_pin={s.pin: s for s in specs})
        self.registry._by_id[device_id] = (time.monotonic() + 60, info)

    def rows(self) -> list[tuple[object, ...]]:
        return [(r[0], r[1], r[3], r[4], r[5]) for r in self.history._queue.rows]  # all but the time


def values(*pairs: tuple[str, bytes]) -> list[Message]:
    return [Message(topic, payload, 1, False, receipt=i) for i, (topic, payload) in enumerate(pairs, 1)]


async def test_plain_values_are_stored_at_once_in_order() -> None:
    world = World()
    batch = values(("d/1/ds/Temp", b"21.5"), ("d/2/ds/Temp", b"999"), ("d/1/ds/Level", b"7"),
                   ("d/1/ds/Note", b"hello"), ("d/1/ds/Temp", b"22"))
    assert world.ingest.handle_ready(batch) == 5
    assert world.rows() == [(1, 0, 21.5, None, True), (2, 0, 85.0, None, True),  # clamped to max
                            (1, 1, 7.0, None, False), (1, 2, None, "hello", True), (1, 0, 22.0, None, True)]
    latest = await world.latest.get_all(1)
    assert {pin: v.value for pin, v in latest.items()} == {0: "22.0", 1: "7", 2: "hello"}  # the newest
    assert (await world.latest.get(2, 0)).value == "85.0"  # type: ignore[union-attr]
    assert set(world.ingest.services.lifecycle._seen) == {1, 2}
    assert world.ingest.processed == 5 and world.published.messages == []


@pytest.mark.parametrize(("topic", "payload"), [
    ("d/1/ds/Temp", b"warm"),          # refused: handle() tells the device why
    ("d/1/ds/Nope", b"1"),             # no such datastream: the same
    ("d/1/ds/Temp", b"\xff"),          # not UTF-8
    ("d/1/ds/Level", b"1.0"),          # parse_value takes it: it says what it makes of it
    ("d/3/ds/Temp", b"1"),             # a device not in the cache: handle() loads it
    ("d/1/event/alarm", b""),          # not a value
    ("d/\u00b2/ds/Temp", b"1"),        # "²" is a digit to str.isdigit, not to int
])
async def test_anything_else_stops_the_run_where_it_is(topic: str, payload: bytes) -> None:
    world = World()
    batch = values(("d/1/ds/Temp", b"20"), (topic, payload), ("d/2/ds/Temp", b"30"))
    assert world.ingest.handle_ready(batch) == 1  # the first is stored; the second is handle()'s
    assert world.rows() == [(1, 0, 20.0, None, True)]
    assert world.ingest.handle_ready(batch, 2) == 3  # and after it, the run goes on
    assert world.rows() == [(1, 0, 20.0, None, True), (2, 0, 30.0, None, True)]


async def test_without_room_for_the_whole_run_nothing_is_stored_at_once() -> None:
    world = World(queue_rows=4)
    batch = values(*[("d/1/ds/Temp", str(i).encode()) for i in range(5)])
    assert world.ingest.handle_ready(batch) == 0  # handle() waits for room instead
    assert world.rows() == [] and world.ingest.processed == 0
    assert world.ingest.handle_ready(batch, 1) == 5  # four fit


async def test_a_changed_template_is_used_as_soon_as_the_registry_forgets_the_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    assert world.ingest.handle_ready(values(("d/1/ds/Temp", b"50"))) == 1
    narrower = DatastreamSpec(pin=0, name="Temp", type=DatastreamType.DOUBLE, min=0.0, max=40.0, save_raw=True)
    world.registry.invalidate(1)  # a change notice: the template was edited
    world.cache(1, narrower)
    assert world.ingest.handle_ready(values(("d/1/ds/Temp", b"50"))) == 1
    assert world.rows()[-1] == (1, 0, 40.0, None, True)  # the new max, at once

    wider = DatastreamSpec(pin=0, name="Temp", type=DatastreamType.DOUBLE, min=0.0, max=45.0, save_raw=True)
    world.cache(1, wider)  # a refresh after the registry's time to live, without a notice
    assert world.ingest.handle_ready(values(("d/1/ds/Temp", b"50"))) == 1
    assert world.rows()[-1] == (1, 0, 40.0, None, True)  # what the ingest found out is reused a while...
    later = time.monotonic() + service_module.ROUTES_SECONDS
    monkeypatch.setattr(service_module.time, "monotonic", lambda: later)
    assert world.ingest.handle_ready(values(("d/1/ds/Temp", b"50"))) == 1
    assert world.rows()[-1] == (1, 0, 45.0, None, True)  # ...for at most ROUTES_SECONDS


async def test_watching_consoles_see_each_value_with_its_text() -> None:
    world = World()
    with world.data.live.subscribe([1]) as watching:
        assert world.ingest.handle_ready(values(("d/1/ds/Temp", b"19.50"), ("d/2/ds/Temp", b"3"))) == 2
        event = await watching.next()
    assert (event["pin"], event["value"], event["origin"]) == (0, "19.5", "device")
    assert isinstance(event["ts"], int) and watching.pending == 0  # device 2 is not watched
    assert isinstance((await world.latest.get(1, 0)).updated_at, datetime)  # type: ignore[union-attr]
