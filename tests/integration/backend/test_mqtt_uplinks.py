"""Blynk's MQTT uplinks beyond plain values, through the real broker and app, byte for byte:
batch_ds, timestamped batches, erase, widget properties, events, metadata, time and location."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from backend.devices.timezones import utc_payload
from backend.transfer.schemas import DeviceOut
from tests.integration.backend.conftest import PahoDevice, connect_device, is_connected
from tests.integration.backend.devices_doc import provision_rich, query, timeline
from tests.support.net import wait_for
from tests.support.paho import ConnectDevice
from tests.support.stack import StackConfig


@pytest.fixture
def rich(stack: StackConfig) -> list[DeviceOut]:
    """Devices whose datastreams keep raw data: the history tests here look at raw points."""
    return provision_rich(stack, save_raw=True)


# Each test with a connected device runs over plain MQTT, TLS and WebSocket (see conftest).
TRANSPORTS_UNDER_TEST = ("tcp", "tls", "ws")


@pytest.fixture
def dev(stack: StackConfig, rich: list[DeviceOut], transport: str) -> Iterator[PahoDevice]:
    device = connect_device(stack, rich[0], transport=transport)
    wait_for(lambda: is_connected(stack, rich[0].token), message="presence to reach the app")
    yield device
    device.client.disconnect()
    device.client.loop_stop()


def get(http: httpx.Client, token: str, pins: str) -> httpx.Response:
    return http.get(f"/external/api/get?token={token}&{pins}")


def diag(device: PahoDevice) -> bytes:
    return device.next(topic_prefix="downlink/diag")[1]


def test_batch_ds_keeps_good_entries_and_reports_bad_ones(http: httpx.Client, dev: PahoDevice) -> None:
    dev.publish(
        "batch_ds", json.dumps({"Temperature": 21.5, "Power": True, "Label": 5, "Nope": 1, "Where": [24.1, 56.9]})
    )
    assert diag(dev) == b"batch_ds: Label (string) expects a string, got a JSON number"
    assert diag(dev) == b"batch_ds: no datastream named 'Nope'"
    wait_for(
        lambda: (
            get(http, dev.info.token, "v0&v1&v2&v3").json() == {"v0": 21.5, "v1": 1, "v2": "none", "v3": [24.1, 56.9]}
        ),
        message="the batch's good values",
    )
    dev.publish("batch_ds", b"[1, 2]")
    assert diag(dev) == b"batch_ds: expected a JSON object by datastream name, got a JSON array"
    dev.publish("batch_ds", '{"Power": 0.5}')  # a number, but not an integer
    assert diag(dev) == b"batch_ds: Power expects an integer, got '0.5'"


def test_timestamped_batch(stack: StackConfig, http: httpx.Client, dev: PahoDevice) -> None:
    dev.publish("ds/Temperature", "30", qos=1)
    wait_for(lambda: get(http, dev.info.token, "v0").text == "30.0")
    now = datetime.now(UTC).replace(microsecond=0)
    points = [now - timedelta(days=2), now - timedelta(days=1), now - timedelta(days=40), now + timedelta(days=40)]
    payload = [[int(p.timestamp() * 1000), 10.0 + i] for i, p in enumerate(points)] + [[1, "x"]]
    dev.publish("ds/Temperature/timestamped_batch", json.dumps(payload))
    assert diag(dev) == b"ds/Temperature/timestamped_batch: 2 of 5 points refused: timestamp more than 30 days from now"
    assert diag(dev) == (
        b"ds/Temperature/timestamped_batch: 1 of 5 points refused: "
        b"Temperature (double) expects a number, got a JSON string"
    )

    def history() -> list[tuple[object, ...]]:
        return query(
            stack,
            "SELECT ts, value FROM history WHERE device_id = %s AND pin = 0 AND ts < %s ORDER BY ts",
            dev.info.id,
            now - timedelta(hours=1),
        )

    assert wait_for(history, message="timestamped history rows") == [(points[0], 10.0), (points[1], 11.0)]
    assert get(http, dev.info.token, "v0").text == "30.0"  # older points never move the latest value
    dev.publish("ds/Nope/timestamped_batch", "[]")
    assert diag(dev) == (
        b"ds/Nope/timestamped_batch: no datastream named 'Nope' in template '" + dev.info.template.encode() + b"'"
    )


def test_without_save_raw_batch_ds_and_timestamped_points_are_rollups_only(
    stack: StackConfig, http: httpx.Client, transport: str, paho_device: ConnectDevice
) -> None:
    info = provision_rich(stack)[0]
    dev = paho_device(stack, info, transport=transport)
    wait_for(lambda: is_connected(stack, info.token), message="presence to reach the app")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    points = [[int((hour + timedelta(seconds=s)).timestamp() * 1000), v] for s, v in ((1, 10), (2, 20), (70, 5))]
    dev.publish("ds/Temperature/timestamped_batch", json.dumps(points))
    dev.publish("batch_ds", json.dumps({"Temperature": 30, "Label": "batch"}), qos=1)
    wait_for(lambda: get(http, info.token, "v2").text == "batch", message="the batch's values")

    def minutes() -> list[tuple[object, ...]]:
        return query(
            stack,
            "SELECT bucket, min, max, sum, count FROM history_minute WHERE device_id = %s AND pin = 0 ORDER BY bucket",
            info.id,
        )

    rows = wait_for(lambda: len(minutes()) == 3 and minutes(), message="three minute buckets")
    assert rows[:2] == [(hour, 10.0, 20.0, 30.0, 2), (hour + timedelta(minutes=1), 5.0, 5.0, 5.0, 1)]
    assert rows[2][1:] == (30.0, 30.0, 30.0, 1)
    assert query(stack, "SELECT count(*) FROM history WHERE device_id = %s", info.id) == [(0,)]


def test_erase_clears_the_latest_value_and_keeps_history(
    stack: StackConfig, http: httpx.Client, dev: PahoDevice
) -> None:
    dev.publish("ds/Label", "hello", qos=1)
    wait_for(lambda: get(http, dev.info.token, "v2").text == "hello")
    dev.publish("ds/Label/erase", "", qos=1)
    wait_for(lambda: get(http, dev.info.token, "v2").text == "none", message="the default after erase")
    assert http.get(f"/external/api/getAll?token={dev.info.token}").json() == {}
    wait_for(
        lambda: (
            query(stack, "SELECT text_value FROM history WHERE device_id = %s AND pin = 2", dev.info.id) == [("hello",)]
        )
    )
    dev.publish("ds/Nope/erase", "")
    assert diag(dev).startswith(b"ds/Nope/erase: no datastream named 'Nope'")


def test_widget_properties(stack: StackConfig, dev: PahoDevice) -> None:
    def props() -> list[tuple[object, ...]]:
        return query(
            stack,
            "SELECT pin, property, value FROM device_property WHERE device_id = %s ORDER BY property",
            dev.info.id,
        )

    dev.publish("ds/Power/prop/label", "Main switch")
    dev.publish("ds/Power/prop/labels", "Off\x00On", qos=1)
    wait_for(lambda: props() == [(1, "label", "Main switch"), (1, "labels", "Off\x1fOn")], message="properties")
    dev.publish("ds/Power/prop/bogus", "x")
    assert diag(dev) == b"ds/Power/prop/bogus: unknown property 'bogus'"
    dev.publish("ds/Power/prop/label/erase", "", qos=1)
    wait_for(lambda: props() == [(1, "labels", "Off\x1fOn")], message="the erased property gone")
    dev.publish("ds/Nope/prop/label", "x")
    assert diag(dev).startswith(b"ds/Nope/prop/label: no datastream named 'Nope'")


def test_events_go_on_the_timeline(stack: StackConfig, dev: PahoDevice) -> None:
    def events() -> list[tuple[object, ...]]:
        return [e for e in timeline(stack, dev.info.id) if e[0] == "event"]

    dev.publish("event/overheat", "")
    dev.publish("event/door", "Front door opened", qos=1)
    wait_for(lambda: len(events()) == 2, message="two events")
    assert events() == [("event", "overheat", "warning", "Too hot"), ("event", "door", "info", "Front door opened")]
    dev.publish("event/nope", "")
    assert diag(dev) == b"event/nope: no event with code 'nope' in template '" + dev.info.template.encode() + b"'"


def test_events_over_the_daily_limit_are_refused(
    stack: StackConfig, rich: list[DeviceOut], paho_device: ConnectDevice
) -> None:
    other = rich[1]  # its limiter has not seen it yet, so it counts what is stored today
    with __import__("psycopg").connect(stack.database_url) as conn:
        conn.execute(
            "INSERT INTO device_event (device_id, ts, kind, code, type) "
            "SELECT %s, now(), 'event', 'door', 'info' FROM generate_series(1, 100)",
            (other.id,),
        )
    dev = paho_device(stack, other)
    dev.publish("event/overheat", "")
    assert diag(dev) == b"event/overheat: limit of 100 events a day reached"


def test_metadata_written_by_the_device_and_read_back(dev: PahoDevice) -> None:
    dev.publish("meta/Serial Number", "SN-0042")
    dev.publish("meta/Hotspot Name", "Blynk Rich")
    dev.publish("meta/Device Name", "renamed")
    assert diag(dev) == b"meta/Device Name: 'Device Name' cannot be set by the device"
    dev.publish("meta/Contact", "x@example.com")
    assert diag(dev) == b"meta/Contact: 'Contact' cannot be set by the device"
    dev.publish("meta/Count", "many")
    assert diag(dev) == b"meta/Count: expects a number, got 'many'"
    dev.publish("meta/Nope", "1")
    assert diag(dev) == b"meta/Nope: no metadata field named 'Nope' in template '" + dev.info.template.encode() + b"'"
    dev.publish("get/meta", "Serial Number,Hotspot Name,Device Name,Contact,Count,Device Owner,Nope")
    got = [dev.next(topic_prefix="downlink/") for _ in range(7)]
    assert got == [
        ("downlink/meta/Serial Number", b"SN-0042"),
        ("downlink/meta/Hotspot Name", b"Blynk Rich"),
        ("downlink/meta/Device Name", dev.info.name.encode()),
        ("downlink/meta/Contact", b"ops@example.com"),
        ("downlink/meta/Count", b""),
        ("downlink/meta/Device Owner", b""),
        (
            "downlink/diag",
            b"get/meta: no metadata field named 'Nope' in template '" + dev.info.template.encode() + b"'",
        ),
    ]


def utc_answer(dev: PahoDevice) -> tuple[bytes, dict[str, object]]:
    dev.publish("get/utc/all/json", "")
    topic, payload = dev.next(topic_prefix="downlink/utc")
    assert topic == "downlink/utc/all/json"
    return payload, json.loads(payload)


def assert_utc(payload: bytes, doc: dict[str, object], zone: str) -> None:
    """Byte-compatible with the reference document for that zone at the reported time."""
    at = datetime.fromtimestamp(int(doc["time"]) / 1000, tz=UTC)  # type: ignore[call-overload]
    assert list(doc) == ["tz_name", "tz_rule", "tz_offset", "dst_offset", "time", "iso8601"]
    assert payload == utc_payload(ZoneInfo(zone), at)


def test_time_zone_resolution_and_location(dev: PahoDevice) -> None:
    payload, doc = utc_answer(dev)
    assert doc["tz_name"] == "UTC" and doc["tz_rule"] == "UTC0"  # the organization's zone
    assert_utc(payload, doc, "UTC")
    dev.publish("get/loc/all", "")
    assert diag(dev) == (
        b"get/loc/all: the device has no location (no Location datastream value and no Location metadata)"
    )
    dev.publish("meta/Time Zone", "America/Goose_Bay")
    payload, doc = utc_answer(dev)
    assert doc["tz_name"] == "America/Goose_Bay" and doc["tz_rule"] == "AST4ADT,M3.2.0,M11.1.0"
    assert_utc(payload, doc, "America/Goose_Bay")
    dev.publish("ds/Where", "24.1,56.95")
    dev.publish("get/loc/all", "")
    assert dev.next(topic_prefix="downlink/loc") == ("downlink/loc/all", b"56.95,24.1")
    payload, doc = utc_answer(dev)  # the location wins over the Time Zone metadata
    assert doc["tz_name"] == "Europe/Riga"
    assert_utc(payload, doc, "Europe/Riga")


async def test_template_metadata_round_trips_through_export(stack: StackConfig) -> None:
    """The import document's metadata and offline_ignore_seconds come back from export, ids kept."""
    import msgspec

    from backend.db.engine import Database
    from backend.orgs.services import OrgService
    from backend.security import Secrets
    from backend.transfer.schemas import Document
    from backend.transfer.services import TransferService
    from tests.integration.backend.devices_doc import rich_doc
    from tests.support.stack import TEST_SECRET

    doc = rich_doc(offline_ignore_seconds=120)
    doc["templates"][0]["metadata"].insert(0, {"name": "IMEI", "type": "imei", "id": 50})
    async with Database(stack.database_url, pool_size=1) as db:
        async with db.session() as session:
            root = await OrgService(session).ensure_root("admin@test.local", "admin-password-123")
            service = TransferService(session, Secrets(TEST_SECRET))
            await service.import_document(root.id, msgspec.convert(doc, Document))  # type: ignore[arg-type]
            exported = await service.export_document(root.id)  # type: ignore[arg-type]
    (template,) = [t for t in exported.templates if t.name == doc["templates"][0]["name"]]
    assert template.offline_ignore_seconds == 120
    assert sorted((m.id, m.name, m.type, m.default) for m in template.metadata) == [
        (50, "IMEI", "imei", None),
        (51, "Serial Number", "text", "unset"),
        (52, "Count", "number", None),
        (53, "Contact", "contact", "ops@example.com"),
    ]
