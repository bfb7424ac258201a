"""The app's half of integration clients: the device feed's topics and the write topics it takes
(``backend.integrations``); the database and broker parts are in
``tests/integration/broker/test_integration_stack.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from backend.devices.signals import DeviceEventSignal, DeviceSignals, PresenceSignal, StoredValues
from backend.integrations.feed import DeviceFeed
from backend.integrations.writes import WRITE_SUBSCRIPTION, parse_write_topic
from broker.namespace import write_topic

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | str]] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> object:
        assert qos == 0 and not retain
        self.sent.append((topic, payload))
        return None


def feed() -> tuple[DeviceFeed, DeviceSignals, Recorder]:
    signals, recorder = DeviceSignals(), Recorder()
    made = DeviceFeed(pool=None, signals=signals, publisher=recorder)  # type: ignore[arg-type]  # no database here
    made.orgs = {1: (7,), 2: (8,), 4: (5, 8)}  # device 4: of 8 (a sub-organization of 5), fed into both
    return made, signals, recorder


def test_values_of_fed_devices_go_to_their_own_organizations_namespace() -> None:
    _, signals, recorder = feed()
    rows: list[Any] = [
        (1, 10, 0, "Temperature", 21.5, 21.5, AT),
        (2, 10, 1, "Power", "1", 1.0, AT),
        (3, 10, 0, "Temperature", 5.0, 5.0, AT),  # not fed
    ]
    signals.values(StoredValues(rows, "device"))
    assert recorder.sent == [("o/7/dev/1/ds/Temperature", b"21.5"), ("o/8/dev/2/ds/Power", b"1")]


def test_a_sub_organizations_device_goes_to_its_own_and_every_fed_parents_namespace() -> None:
    _, signals, recorder = feed()
    signals.values(StoredValues([(4, 10, 0, "Temperature", 3.5, 3.5, AT)], "device"))
    signals.event(DeviceEventSignal(4, 8, 10, "Barn", "overheat", "Overheat", "WARNING", "hot", AT))
    signals.presence(PresenceSignal(4, True, AT))
    assert [t for t, _ in recorder.sent] == [
        "o/5/dev/4/ds/Temperature",
        "o/8/dev/4/ds/Temperature",
        "o/5/dev/4/event/overheat",
        "o/8/dev/4/event/overheat",
        "o/5/dev/4/online",
        "o/8/dev/4/online",
    ]


def test_events_and_presence() -> None:
    _, signals, recorder = feed()
    signals.event(DeviceEventSignal(1, 7, 10, "Kitchen", "overheat", "Overheat", "WARNING", "hot", AT))
    signals.event(DeviceEventSignal(3, 9, 10, "Other", "overheat", "Overheat", "WARNING", "hot", AT))
    signals.presence(PresenceSignal(2, True, AT))
    signals.presence(PresenceSignal(1, False, AT))
    assert [t for t, _ in recorder.sent] == ["o/7/dev/1/event/overheat", "o/8/dev/2/online", "o/7/dev/1/online"]
    body = json.loads(recorder.sent[0][1])
    assert body == {"name": "Overheat", "type": "WARNING", "description": "hot", "ts": int(AT.timestamp() * 1000)}
    assert [p for _, p in recorder.sent[1:]] == [b"1", b"0"]


def test_write_topics_the_app_takes() -> None:
    assert WRITE_SUBSCRIPTION == "$share/openblynk-integrations/sys/integration/write/+/+/+"
    assert parse_write_topic(write_topic("client:12", 42, "Power")) == (12, 42, "Power")
    for topic in (
        "sys/integration/write/device:12/42/Power",
        "sys/integration/write/client:x/42/Power",
        "sys/integration/write/client:12/x/Power",
        "sys/integration/write/client:12/42/",
        "sys/integration/write/client:12/42/a/b",
        "o/7/dev/42/set/Power",
    ):
        assert parse_write_topic(topic) is None, topic
