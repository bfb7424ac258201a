"""Subscription index and retained tree, against the brute-force reference matcher."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.topics import TopicFilter, TopicName
from broker.trie import MATCHES_KEPT, RetainedTree, SubscriptionIndex

LEVEL = st.sampled_from(["a", "b", "c", "", "$x"])
TOPIC = st.lists(LEVEL, min_size=1, max_size=4).map("/".join).filter(bool)
FILTER_LEVEL = st.sampled_from(["a", "b", "c", "", "+", "$x"])


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(FILTER_LEVEL, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    value = "/".join(levels)
    return value or "#"


SUBSCRIPTIONS = st.lists(st.tuples(filters(), st.integers(0, 5), st.integers(0, 2)), max_size=25)


def brute_force(subs: list[tuple[str, int, int]], topic: str) -> dict[int, int]:
    expected: dict[int, int] = {}
    for value, subscriber, qos in subs:
        if TopicFilter(value).matches(topic):
            expected[subscriber] = max(qos, expected.get(subscriber, -1))
    return expected


def build(subs: list[tuple[str, int, int]]) -> tuple[SubscriptionIndex[int], list[tuple[str, int, int]]]:
    index: SubscriptionIndex[int] = SubscriptionIndex()
    effective: dict[tuple[str, int], int] = {}
    for value, subscriber, qos in subs:
        index.add(TopicFilter(value), subscriber, qos)
        effective[(value, subscriber)] = qos  # re-subscribing replaces the QoS
    return index, [(v, s, q) for (v, s), q in effective.items()]


@settings(max_examples=300, deadline=None)
@given(SUBSCRIPTIONS, TOPIC)
def test_index_matches_like_brute_force(subs: list[tuple[str, int, int]], topic: str) -> None:
    index, effective = build(subs)
    assert index.match(topic) == brute_force(effective, topic)


@settings(max_examples=200, deadline=None)
@given(SUBSCRIPTIONS, st.data())
def test_removal_keeps_index_consistent(subs: list[tuple[str, int, int]], data: st.DataObject) -> None:
    index, effective = build(subs)
    removed = data.draw(st.lists(st.integers(0, 5), max_size=3))
    for subscriber in removed:
        index.remove_subscriber(subscriber)
    remaining = [entry for entry in effective if entry[1] not in removed]
    if remaining:
        value, subscriber, _ = remaining[0]
        assert index.remove(TopicFilter(value), subscriber)
        assert not index.remove(TopicFilter(value), subscriber)
        remaining = remaining[1:]
    assert len(index) == len(remaining)
    for topic in ["a", "a/b", "b/c/a", "$x/a", "/a", "a/b/c/"]:
        assert index.match(topic) == brute_force(remaining, topic)
    for subscriber in range(6):
        index.remove_subscriber(subscriber)
    assert len(index) == 0 and not index._root.children and not index._exact


@settings(max_examples=300, deadline=None)
@given(st.lists(TOPIC, max_size=20), filters())
def test_retained_tree_matches_like_brute_force(topics: list[str], topic_filter: str) -> None:
    tree: RetainedTree[str] = RetainedTree()
    for topic in topics:
        tree.set(TopicName(topic), "v:" + topic)
    parsed = TopicFilter(topic_filter)
    found = dict(tree.match(parsed))
    assert found == {t: "v:" + t for t in set(topics) if parsed.matches(t)}
    assert len(tree) == len(set(topics))


def test_retained_tree_get_delete_prunes() -> None:
    tree: RetainedTree[int] = RetainedTree()
    tree.set(TopicName("d/1/downlink/ota/json"), 1)
    tree.set(TopicName("d/1"), 2)
    assert tree.get("d/1/downlink/ota/json") == 1 and tree.get("d/1/downlink") is None
    assert tree.delete("d/1/downlink/ota/json") and not tree.delete("d/1/downlink/ota/json")
    assert tree.get("d/1") == 2 and len(tree) == 1
    assert list(tree.match(TopicFilter("d/#"))) == [("d/1", 2)]
    tree.delete("d/1")
    assert not tree._root.children


def counted_walks(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """A one-item list counting the trie nodes ``SubscriptionIndex.match`` visits from now on."""
    calls = [0]
    original = SubscriptionIndex._collect

    def counting(self, *args):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return original(self, *args)

    monkeypatch.setattr(SubscriptionIndex, "_collect", counting)
    return calls


def test_match_work_depends_on_depth_not_on_subscription_count(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = counted_walks(monkeypatch)
    index: SubscriptionIndex[int] = SubscriptionIndex()
    for device in range(2000):
        index.add(TopicFilter(f"d/{device}/downlink/#"), device, 0)
        index.add(TopicFilter(f"d/{device}/downlink/ds/Power"), device, 1)
    index.add(TopicFilter("d/+/ds/#"), -1, 1)
    assert index.match("d/7/downlink/ds/Power") == {7: 1}
    assert calls[0] <= 2 * (len("d/7/downlink/ds/Power".split("/")) + 1)


def test_match_answers_are_kept_until_the_index_changes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A topic matched again costs no walk; any subscribe or unsubscribe drops what was kept,
    so an answer is never stale; at most MATCHES_KEPT topics are kept."""
    calls = counted_walks(monkeypatch)
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add(TopicFilter("d/+/ds/#"), "app", 1)
    assert index.match("d/1/ds/T") == {"app": 1}
    walked = calls[0]
    assert walked > 0
    assert index.match("d/1/ds/T") == {"app": 1}
    assert calls[0] == walked  # kept
    index.add(TopicFilter("d/1/ds/T"), "device", 0)
    assert index.match("d/1/ds/T") == {"app": 1, "device": 0}
    index.remove(TopicFilter("d/+/ds/#"), "app")
    assert index.match("d/1/ds/T") == {"device": 0}
    assert not index.remove(TopicFilter("d/+/ds/#"), "app")  # nothing to remove: nothing dropped
    index.remove_subscriber("device")
    assert index.match("d/1/ds/T") == {}
    for n in range(MATCHES_KEPT + 10):
        index.match(f"x/{n}")
    assert len(index._matched) <= MATCHES_KEPT


def test_nodes_share_one_empty_dict_that_no_change_writes_to() -> None:
    """Nodes without children or subscribers share one empty dict (memory a connection,
    issue #16); subscribing, unsubscribing and pruning must never write into it."""
    from broker import trie

    index: SubscriptionIndex[int] = SubscriptionIndex()
    wanted = ["d/1/downlink/#", "d/1/downlink/ds/+", "d/2/downlink/#", "+/x", "#"]
    for round_ in range(3):
        for n, value in enumerate(wanted):
            index.add(TopicFilter(value), n, round_ % 2)
        assert index.match("d/1/downlink/ds/T") == {0: round_ % 2, 1: round_ % 2, 4: round_ % 2}
        for n, value in enumerate(wanted):
            assert index.remove(TopicFilter(value), n)
        assert index.match("d/1/downlink/ds/T") == {}
        assert trie._NONE == {}
    assert not index.remove(TopicFilter("d/9/downlink/#"), 9)
    assert trie._NONE == {}
