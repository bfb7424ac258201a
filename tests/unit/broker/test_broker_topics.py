"""Blynk topic rules: the table of device topics, uplink ACL, device subscribe ACL, mount,
value objects."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import BrokerError, InvalidTopicError
from broker.topics import (
    ALWAYS_DELIVERED,
    DeviceMount,
    Downlink,
    TopicFilter,
    TopicName,
    Uplink,
    UplinkMatch,
    always_delivered_device,
    is_device_filter_allowed,
    is_uplink_topic,
    match_uplink,
    presence_topic,
    valid_publish_topic,
)
from tests.support.topics import example

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
    [
        "#",
        "+/#",
        "downlink",
        "downlink/+",
        "downlink/+/Power",
        "downlink/ds/#/x",
        "downlink//x",
        "sys/presence/#",
        "ds/Temp",
        "d/2/downlink/#",
        "",
        "downlink/a\x00",
    ],
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


@pytest.mark.parametrize("uplink", list(Uplink))
def test_the_acl_takes_each_uplink_of_the_table_as_itself(uplink: Uplink) -> None:
    topic, names = example(uplink.pattern)
    assert match_uplink(topic) == UplinkMatch(uplink, names)
    assert len(names) == uplink.names and is_uplink_topic(topic)


_NAME = r"([^/+#\x00]+)"  # a whole level: not empty, no wildcard, no NUL
_REFERENCE = [(uplink, re.compile(re.sub(r"<[^/]*>", lambda _: _NAME, uplink.pattern))) for uplink in Uplink]
_VOCABULARY = sorted(
    {level for uplink in Uplink for level in uplink.levels if not level.startswith("<")}
    | {"Temp", "Set Temperature", "", "+", "#", "a\x00b", "$SYS", "downlink", "d", "42"}
)


def reference(topic: str) -> UplinkMatch | None:
    """The table read plainly: the one pattern whose regular expression the topic matches."""
    found = [
        UplinkMatch(uplink, match.groups())
        for uplink, pattern in _REFERENCE
        if (match := pattern.fullmatch(topic)) and not topic.startswith("$")
    ]
    assert len(found) <= 1
    return found[0] if found else None


@given(st.lists(st.sampled_from(_VOCABULARY), min_size=1, max_size=6).map("/".join))
def test_the_acl_accepts_exactly_the_tables_uplinks(topic: str) -> None:
    assert match_uplink(topic) == reference(topic)
    assert is_uplink_topic(topic) is (reference(topic) is not None)


def test_downlinks_of_the_table() -> None:
    assert ALWAYS_DELIVERED == {"downlink/diag", "downlink/redirect", "downlink/ota/json", "downlink/ping"}
    assert [d.qos for d in Downlink if d.qos] == [1] and Downlink.PING.qos == 1
    assert Downlink.VALUE.topic("Set Temp") == "downlink/ds/Set Temp"
    assert Downlink.META.topic("Serial {0}") == "downlink/meta/Serial {0}"
    assert Downlink.REBOOT.topic() == "downlink/reboot"
    with pytest.raises(ValueError, match="takes 1 names, got 0"):
        Downlink.VALUE.topic()
    for downlink in Downlink:  # a device may subscribe to each, and publish none
        topic, _ = example(downlink.pattern)
        assert is_device_filter_allowed(topic) and not is_uplink_topic(topic)


@pytest.mark.parametrize(
    ("topic", "valid"),
    [
        ("ds/Temperature", True),
        ("$SYS/broker", True),  # a name; where "$" is refused, the broker checks it on its own
        ("a//b", True),
        ("", False),
        ("ds/+", False),
        ("ds/#", False),
        ("a+b", False),
        ("ds/\x00", False),
    ],
)
def test_which_topic_names_a_publish_may_carry(topic: str, valid: bool) -> None:
    assert valid_publish_topic(topic) is valid
