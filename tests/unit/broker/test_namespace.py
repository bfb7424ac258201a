"""The rules of an organization's integration namespace (``broker.namespace``)."""

from __future__ import annotations

import pytest

from broker.errors import InvalidTopicError
from broker.namespace import Namespace, is_namespace_filter_allowed, namespace_publish, parse_write


def test_mount_and_unmount_only_its_own_organization() -> None:
    namespace = Namespace(7)
    assert namespace.mount("a/b") == "o/7/a/b"
    assert namespace.mount("#") == "o/7/#"
    assert namespace.unmount("o/7/a/b") == "a/b"
    assert namespace.unmount("o/7//x") == "/x"
    for foreign in ("o/70/a", "o/8/a", "d/7/ds/x", "sys/presence/7", "o/7/", "o/7"):
        assert namespace.unmount(foreign) is None
    with pytest.raises(InvalidTopicError):
        Namespace(0)


@pytest.mark.parametrize(
    ("raw_filter", "allowed"),
    [
        ("#", True),
        ("+/+", True),
        ("home/#", True),
        ("o/1/#", True),  # inside its own namespace, like any other name
        ("dev/#", True),
        ("dev/+/ds/#", True),
        ("dev/42/#", True),
        ("dev/42/online", True),
        ("dev", True),
        ("dev/nosubscribe", False),
        ("dev/042/#", False),
        ("dev/abc/ds/x", False),
        ("dev/+", False),
        ("$SYS/#", False),
        ("$share/g/#", False),
        ("", False),
    ],
)
def test_which_filters_a_client_may_hold(raw_filter: str, allowed: bool) -> None:
    assert is_namespace_filter_allowed(raw_filter) is allowed


def test_publishing_into_the_feed_is_only_a_write_and_never_retained() -> None:
    assert namespace_publish("home/x", retain=True)
    assert namespace_publish("dev/42/set/Power", retain=False)
    assert not namespace_publish("dev/42/set/Power", retain=True)
    assert not namespace_publish("dev/42/ds/Power", retain=False)
    assert not namespace_publish("dev/42/online", retain=False)
    assert not namespace_publish("$SYS/x", retain=False)
    assert parse_write("dev/42/set/Power") == (42, "Power")
    for topic in ("dev/42/set", "dev/42/set/a/b", "dev/x/set/a", "dev/0/set/a", "home/42/set/a"):
        assert parse_write(topic) is None
