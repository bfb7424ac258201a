"""Time zone resolution and the downlink/utc/all/json document, byte for byte (reference §1.6)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from backend.devices.timezones import TzSources, posix_rule, resolve_zone, utc_payload, zone_for


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_the_reference_example() -> None:
    now = datetime.fromtimestamp(1709326077.759, tz=UTC)
    assert utc_payload(ZoneInfo("America/Goose_Bay"), now) == (
        b'{"tz_name":"America/Goose_Bay","tz_rule":"AST4ADT,M3.2.0,M11.1.0","tz_offset":-240,"dst_offset":0,'
        b'"time":1709326077759,"iso8601":"2024-03-01T16:47:57-04:00"}'
    )


def test_across_a_dst_change() -> None:
    zone = ZoneInfo("Europe/Riga")
    before = utc_payload(zone, at(2024, 3, 31, 0, 59, 59))  # 02:59:59 EET
    after = utc_payload(zone, at(2024, 3, 31, 1, 0, 0))  # 04:00:00 EEST
    assert before == (
        b'{"tz_name":"Europe/Riga","tz_rule":"EET-2EEST,M3.5.0/3,M10.5.0/4","tz_offset":120,'
        b'"dst_offset":0,"time":1711846799000,"iso8601":"2024-03-31T02:59:59+02:00"}'
    )
    assert after == (
        b'{"tz_name":"Europe/Riga","tz_rule":"EET-2EEST,M3.5.0/3,M10.5.0/4","tz_offset":120,'
        b'"dst_offset":60,"time":1711846800000,"iso8601":"2024-03-31T04:00:00+03:00"}'
    )


@pytest.mark.parametrize(
    ("name", "now", "expected"),
    [
        (
            "UTC",
            at(2024, 7, 1, 12),
            b'{"tz_name":"UTC","tz_rule":"UTC0","tz_offset":0,"dst_offset":0,'
            b'"time":1719835200000,"iso8601":"2024-07-01T12:00:00+00:00"}',
        ),
        (
            "Asia/Kolkata",
            at(2024, 7, 1, 12),
            b'{"tz_name":"Asia/Kolkata","tz_rule":"IST-5:30","tz_offset":330,'
            b'"dst_offset":0,"time":1719835200000,"iso8601":"2024-07-01T17:30:00+05:30"}',
        ),
        (
            "America/New_York",
            at(2024, 7, 1, 12),
            b'{"tz_name":"America/New_York","tz_rule":"EST5EDT,M3.2.0,M11.1.0",'
            b'"tz_offset":-300,"dst_offset":60,"time":1719835200000,'
            b'"iso8601":"2024-07-01T08:00:00-04:00"}',
        ),
    ],
)
def test_zones(name: str, now: datetime, expected: bytes) -> None:
    assert utc_payload(ZoneInfo(name), now) == expected


def test_posix_rule_of_an_unknown_zone_is_empty() -> None:
    assert posix_rule("Nowhere/Atlantis") == ""


def test_resolution_order() -> None:
    assert resolve_zone(TzSources()).key == "UTC"
    assert resolve_zone(TzSources(org_tz="Europe/Berlin")).key == "Europe/Berlin"
    assert resolve_zone(TzSources(meta_tz="Asia/Tokyo", org_tz="Europe/Berlin")).key == "Asia/Tokyo"
    assert resolve_zone(TzSources(meta_tz="Not/AZone", org_tz="Europe/Berlin")).key == "Europe/Berlin"
    assert zone_for("../etc/passwd") is None and zone_for("") is None


def test_location_wins_over_metadata_and_organization() -> None:
    sources = TzSources(lat_lon=(53.3, -60.4), meta_tz="Asia/Tokyo", org_tz="Europe/Berlin")
    assert resolve_zone(sources).key == "America/Goose_Bay"


def test_an_assigned_locations_zone_wins_and_an_unknown_one_is_skipped() -> None:
    both = TzSources(meta_tz="Europe/Berlin", org_tz="UTC", location_tz="Asia/Tokyo")
    assert resolve_zone(both).key == "Asia/Tokyo"
    unknown = TzSources(meta_tz="Europe/Berlin", location_tz="Mars/Olympus")
    assert resolve_zone(unknown).key == "Europe/Berlin"
