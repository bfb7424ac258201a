"""Who hears what devices do: ``DeviceSignals`` and the value path's use of it
(``DataService.record`` tells only values of watched datastreams), and Blynk's placeholders."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from backend.devices.data import DataService
from backend.devices.latest import LatestValues
from backend.devices.signals import ALL_PINS, DeviceSignals, PresenceSignal, StoredValue
from backend.history.writer import HistoryWriter
from backend.placeholders import names, render
from backend.templates.values import DatastreamSpec, DatastreamType

AT = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
SOIL = DatastreamSpec(1, "Soil", DatastreamType.INTEGER, min=0, max=100, template_id=7)
NOTE = DatastreamSpec(2, "Note", DatastreamType.STRING, template_id=7)
OTHER = DatastreamSpec(1, "Soil", DatastreamType.INTEGER, template_id=8)


class Nowhere:
    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        raise AssertionError("storing a value publishes nothing")


def service(signals: DeviceSignals) -> DataService:
    history = HistoryWriter(None)  # type: ignore[arg-type]  # not started: rows stay queued
    return DataService(LatestValues(None), history, Nowhere(), signals=signals)  # type: ignore[arg-type]


async def test_only_values_of_watched_datastreams_are_told_checked_and_clamped() -> None:
    signals = DeviceSignals()
    heard: list[list[StoredValue]] = []
    signals.on_values(lambda batch: heard.append(list(batch)))
    data = service(signals)
    values = [((3, SOIL), "150", AT), ((3, NOTE), "hello", AT), ((4, OTHER), "5", AT)]
    await data.record(values)
    assert heard == []  # nobody watches: the listener is not even called

    signals.watch(7, 1)
    await data.record(values)
    assert heard == [[StoredValue(3, 7, 1, "Soil", "100", 100.0, AT, "device")]]  # clamped to max

    heard.clear()
    signals.watch_all(7)
    await data.record(values, origin="server")
    assert [(v.pin, v.text, v.number, v.origin) for v in heard[0]] == [
        (1, "100", 100.0, "server"),
        (2, "hello", None, "server"),
    ]


async def test_refused_values_are_not_told() -> None:
    signals = DeviceSignals()
    heard: list[StoredValue] = []
    signals.on_values(heard.extend)
    signals.watch(7, 1)
    refused = await service(signals).record([((3, SOIL), "wet", AT)])
    assert [index for index, _ in refused] == [0]
    assert heard == []


def test_watches_are_counted_so_one_listener_leaving_keeps_the_others() -> None:
    signals = DeviceSignals()
    signals.watch(7, 1)
    signals.watch(7, 1)
    signals.watch_all(9)
    assert signals.wants(7, 1) and signals.wants(9, 200) and not signals.wants(7, 2)
    signals.unwatch(7, 1)
    assert signals.wants(7, 1)
    signals.unwatch(7, 1)
    signals.unwatch(9, ALL_PINS)
    assert not signals.wants(7, 1) and not signals.wants(9, 200)
    assert signals.watched == set()
    signals.unwatch(7, 1)  # one too many: nothing breaks, nothing is watched
    assert signals.watched == set() and signals.pins == {}


def test_the_pins_by_template_the_value_path_reads_follow_the_watches() -> None:
    signals = DeviceSignals()
    signals.watch(7, 1)
    signals.watch(7, 2)
    signals.watch(7, 2)
    signals.watch_all(9)
    assert signals.pins == {7: {1, 2}, 9: {ALL_PINS}}
    signals.unwatch(7, 2)
    assert signals.pins == {7: {1, 2}, 9: {ALL_PINS}}  # one watch of pin 2 is left
    signals.unwatch(7, 2)
    signals.unwatch(9, ALL_PINS)
    assert signals.pins == {7: {1}}
    assert {(t, p) for t, pins in signals.pins.items() for p in pins} == signals.watched


def test_a_listener_that_raises_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    signals = DeviceSignals()
    heard: list[object] = []

    def broken(signal: PresenceSignal) -> None:
        raise RuntimeError("boom")

    signals.on_presence(broken)
    signals.on_presence(heard.append)
    signals.on_user_added(lambda org, user: heard.append((org, user)))
    signals.on_first_connection(heard.append)
    signals.on_activated(lambda device: heard.append(-device))
    with caplog.at_level(logging.ERROR):
        signals.presence(PresenceSignal(3, True, AT))
    signals.user_added(1, 2)
    signals.first_connection(3)
    signals.activated(3)
    assert heard == [PresenceSignal(3, True, AT), (1, 2), 3, -3]
    assert "a device signal listener failed" in caplog.text


def test_placeholders_are_filled_once_and_unknown_ones_stay() -> None:
    text = "{DEVICE_NAME} in {ORG_NAME}: {TRIGGER_VALUE} % ({UNKNOWN}) {not a placeholder}"
    values = {"DEVICE_NAME": "{ORG_NAME}", "ORG_NAME": "Farm", "TRIGGER_VALUE": "18"}
    assert render(text, values) == "{ORG_NAME} in Farm: 18 % ({UNKNOWN}) {not a placeholder}"
    assert names(text) == ["DEVICE_NAME", "ORG_NAME", "TRIGGER_VALUE", "UNKNOWN"]
    assert render("{device_dataStream_1}", {"device_dataStream_1": "5"}) == "5"
