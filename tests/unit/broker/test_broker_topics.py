"""Blynk topic rules: uplink ACL, device subscribe ACL, mount, value objects."""

from __future__ import annotations

import pytest

from broker.errors import BrokerError, InvalidTopicError
from broker.topics import (
    DeviceMount,
    TopicFilter,
    TopicName,
    always_delivered_device,
    is_device_filter_allowed,
    is_uplink_topic,
    presence_topic,
)

UPLINKS = [
    "info/mcu",
    "batch_ds",
    "ds/Temp",
    "ds/Set Temperature",
    "ds/Temp/erase",
    "ds/Temp/timestamped_batch",
    "ds/Temp/prop/label",
    "ds/Temp/prop/label/erase",
    "event/overheat",
    "meta/Serial Number",
    "get/ds",
    "get/ds/all",
    "get/meta",
    "get/utc/all/json",
    "get/loc/all",
    "ota/status",
]
NOT_UPLINKS = [
    "",
    "foo/bar",
    "ds",
    "ds/",
    "ds//erase",
    "ds/Temp/other",
    "ds/Temp/prop",
    "ds/Temp/prop/label/other",
    "ds/+",
    "ds/#",
    "ds/a\x00b",
    "$SYS/broker",
    "downlink/ds/Power",
    "sys/presence/1",
    "d/2/ds/Temp",
    "info/mcu/x",
    "get/utc",
    "event",
    "/ds/Temp",
]


@pytest.mark.parametrize("topic", UPLINKS)
def test_uplink_topics_are_allowed(topic: str) -> None:
    assert is_uplink_topic(topic)


@pytest.mark.parametrize("topic", NOT_UPLINKS)
def test_other_topics_are_not_uplinks(topic: str) -> None:
    assert not is_uplink_topic(topic)


@pytest.mark.parametrize("topic_filter", ["downlink/#", "downlink/ds/#", "downlink/ds/Power", "downlink/ds/Set Temp"])
def test_device_may_subscribe_under_downlink(topic_filter: str) -> None:
    assert is_device_filter_allowed(topic_filter)


@pytest.mark.parametrize(
    "topic_filter",
    ["#", "+/#", "downlink", "downlink/+", "downlink/+/Power", "downlink/ds/#/x", "downlink//x",
     "sys/presence/#", "ds/Temp", "d/2/downlink/#", "", "downlink/a\x00"],
)
def test_device_may_not_subscribe_elsewhere(topic_filter: str) -> None:
    assert not is_device_filter_allowed(topic_filter)


def test_mount_round_trip_and_foreign_topics() -> None:
    mount = DeviceMount(42)
    assert mount.mount("ds/Temp") == "d/42/ds/Temp"
    assert mount.unmount("d/42/downlink/ds/Power") == "downlink/ds/Power"
    assert mount.unmount("d/421/downlink/ds/Power") is None
    assert mount.unmount("d/4/downlink") is None
    assert mount.unmount("d/42/") is None
    with pytest.raises(InvalidTopicError):
        DeviceMount(0)


def test_always_delivered_topics() -> None:
    assert always_delivered_device("d/7/downlink/diag") == 7
    assert always_delivered_device("d/7/downlink/redirect") == 7
    assert always_delivered_device("d/7/downlink/ota/json") == 7
    for topic in ["d/7/downlink/ds/x", "d/x/downlink/diag", "d/07/downlink/diag", "e/7/downlink/diag", "d/7"]:
        assert always_delivered_device(topic) is None
    assert presence_topic(7) == "sys/presence/7"


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "x\x00"])
def test_topic_filter_rejects_invalid(bad: str) -> None:
    with pytest.raises(InvalidTopicError):
        TopicFilter(bad)


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "a\x00"])
def test_topic_name_rejects_invalid(bad: str) -> None:
    with pytest.raises(InvalidTopicError) as info:
        TopicName(bad)
    assert isinstance(info.value, BrokerError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("+/+", "/x", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
    ],
)
def test_reference_matcher(topic_filter: str, topic: str, expected: bool) -> None:
    assert TopicFilter(topic_filter).matches(topic) is expected
