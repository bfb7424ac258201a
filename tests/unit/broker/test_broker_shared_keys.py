"""Shared subscriptions' filter syntax and how a message's member is chosen (``broker._shared``)."""

from __future__ import annotations

import pytest

from broker._shared import member_for, split_shared, sticky_key
from broker.errors import InvalidTopicError


def test_a_shared_filter_names_its_group_and_inner_filter() -> None:
    assert split_shared("$share/app/d/+/ds/#") == ("app", "d/+/ds/#")
    assert split_shared("d/+/ds/#") is None
    assert split_shared("$SYS/broker") is None


@pytest.mark.parametrize("raw", ["$share/", "$share/g", "$share//d/#", "$share/g+/d/#", "$share/#/d", "$share/g/"])
def test_a_malformed_shared_filter_is_refused(raw: str) -> None:
    with pytest.raises(InvalidTopicError):
        split_shared(raw)


def test_a_device_and_the_reports_on_it_share_one_key() -> None:
    keys = {sticky_key(t) for t in ("d/7/ds/Temp", "d/7/info/mcu", "sys/presence/7", "sys/vitals/7", "sys/ping/7")}
    assert keys == {b"d/7"}
    assert sticky_key("o/3/kitchen/light") == b"o/3/kitchen/light"  # any other topic: itself


def test_when_a_member_leaves_only_its_devices_move() -> None:
    three = ["svc:a", "svc:b", "svc:c"]
    before = {d: member_for(f"d/{d}/ds/x", three) for d in range(1000)}
    after = {d: member_for(f"d/{d}/ds/x", ["svc:a", "svc:c"]) for d in range(1000)}
    assert {d for d in before if before[d] != after[d]} == {d for d in before if before[d] == "svc:b"}
    shares = [list(before.values()).count(m) for m in three]
    assert min(shares) > 250  # about a third each
