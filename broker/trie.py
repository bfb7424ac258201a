"""Topic indexes whose lookup cost depends on topic depth, not on how many entries they hold.

* :class:`SubscriptionIndex` -- filters -> subscribers. Exact filters live in a dict, wildcard
  filters in a trie keyed by topic level. ``match(topic)`` walks at most the levels of
  ``topic`` (branching on ``+``), instead of testing every filter as amqtt's
  ``Broker._run_broadcast`` does.
* :class:`RetainedTree` -- topic names -> retained values; ``match(filter)`` walks the filter's
  levels, so a device subscribing under its own mount never touches anyone else's messages.

Both follow [MQTT-4.7.2-1]: a filter starting with a wildcard does not match ``$`` topics.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from broker.topics import TopicFilter, TopicName

__all__ = ["MATCHES_KEPT", "RetainedTree", "SubscriptionIndex"]

MATCHES_KEPT = 4096
"""Topics whose subscribers :meth:`SubscriptionIndex.match` keeps at most (all are dropped at
any change of the index, and when this many are kept)."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


_NONE: dict[Any, Any] = {}
"""What a node's ``children`` or ``subscribers`` is while it has none: one empty dict that is
only read, never written (an empty dict a node took 64 bytes; every device subscription makes
three nodes). :meth:`_FilterNode.child` and :meth:`_FilterNode.subscribe` make a node's own."""


class _FilterNode(Generic[K]):
    __slots__ = ("children", "subscribers")

    def __init__(self) -> None:
        self.children: dict[str, _FilterNode[K]] = _NONE
        self.subscribers: dict[K, int] = _NONE

    def child(self, level: str) -> _FilterNode[K]:
        """The child node of ``level``, made if there is none."""
        if self.children is _NONE:
            self.children = {}
        node = self.children.get(level)
        if node is None:
            node = self.children[level] = _FilterNode()
        return node

    def subscribe(self, subscriber: K, qos: int) -> None:
        if self.subscribers is _NONE:
            self.subscribers = {}
        self.subscribers[subscriber] = qos


def _merge(target: dict[K, int], source: dict[K, int]) -> None:
    for subscriber, qos in source.items():
        if qos > target.get(subscriber, -1):
            target[subscriber] = qos


class SubscriptionIndex(Generic[K]):
    """Which subscribers (with which QoS) a published topic reaches.

    A subscriber holds at most one subscription per filter (re-subscribing replaces the QoS).
    When several of a subscriber's filters match one topic, it is reported once with the
    highest QoS of those filters (allowed by MQTT 3.1.1 §3.3.5, and what keeps a device from
    getting duplicates).
    """

    def __init__(self) -> None:
        self._exact: dict[str, dict[K, int]] = {}
        self._root: _FilterNode[K] = _FilterNode()
        self._by_subscriber: dict[K, dict[str, int]] = {}
        self._matched: dict[str, dict[K, int]] = {}
        """Answers of :meth:`match` since the last change (at most :data:`MATCHES_KEPT`)."""

    def __len__(self) -> int:
        return sum(len(filters) for filters in self._by_subscriber.values())

    def add(self, topic_filter: TopicFilter, subscriber: K, qos: int) -> None:
        """Subscribe ``subscriber`` to ``topic_filter`` at ``qos`` (replacing an earlier QoS)."""
        self._matched.clear()
        if topic_filter.is_exact:
            self._exact.setdefault(topic_filter.value, {})[subscriber] = qos
        else:
            node = self._root
            for level in topic_filter.levels:
                node = node.child(level)
            node.subscribe(subscriber, qos)
        self._by_subscriber.setdefault(subscriber, {})[topic_filter.value] = qos

    def remove(self, topic_filter: TopicFilter, subscriber: K) -> bool:
        """Drop one subscription; returns whether it existed."""
        filters = self._by_subscriber.get(subscriber)
        if filters is None or filters.pop(topic_filter.value, None) is None:
            return False
        self._matched.clear()
        if not filters:
            del self._by_subscriber[subscriber]
        if topic_filter.is_exact:
            holders = self._exact[topic_filter.value]
            del holders[subscriber]
            if not holders:
                del self._exact[topic_filter.value]
        else:
            self._remove_from_trie(topic_filter.levels, subscriber)
        return True

    def _remove_from_trie(self, levels: tuple[str, ...], subscriber: K) -> None:
        path = [self._root]
        for level in levels:
            path.append(path[-1].children[level])
        del path[-1].subscribers[subscriber]
        for depth in range(len(levels), 0, -1):  # prune nodes left empty, bottom-up
            node = path[depth]
            if node.subscribers or node.children:
                break
            del path[depth - 1].children[levels[depth - 1]]

    def remove_subscriber(self, subscriber: K) -> int:
        """Drop every subscription of ``subscriber``; returns how many there were."""
        filters = list(self._by_subscriber.get(subscriber, {}))
        for value in filters:
            self.remove(TopicFilter(value), subscriber)
        return len(filters)

    def count(self, subscriber: K) -> int:
        """How many filters ``subscriber`` holds."""
        return len(self._by_subscriber.get(subscriber, ()))

    def holds(self, subscriber: K, topic_filter: str) -> bool:
        """Whether ``subscriber`` holds exactly ``topic_filter`` (a broker-side filter string)."""
        return topic_filter in self._by_subscriber.get(subscriber, ())

    def filters_of(self, subscriber: K) -> dict[str, int]:
        """The filters (and QoS) ``subscriber`` holds."""
        return dict(self._by_subscriber.get(subscriber, {}))

    def match(self, topic: str) -> dict[K, int]:
        """Every subscriber whose filters match ``topic``, with its highest matching QoS.

        The answer is kept until the next change of the index (a device publishes to the same
        few topics again and again), so it is shared: callers must not change it."""
        found = self._matched.get(topic)
        if found is not None:
            return found
        found = {}
        exact = self._exact.get(topic)
        if exact:
            _merge(found, exact)
        if self._root.children:
            self._collect(self._root, topic.split("/"), 0, found, topic.startswith("$"))
        if len(self._matched) >= MATCHES_KEPT:
            self._matched.clear()
        self._matched[topic] = found
        return found

    def _collect(self, node: _FilterNode[K], levels: list[str], index: int, found: dict[K, int], dollar: bool) -> None:
        """Walk the trie along ``levels``; called once per visited node (tests count calls)."""
        wildcards_allowed = not (dollar and index == 0)
        multi = node.children.get("#") if wildcards_allowed else None
        if multi is not None:
            _merge(found, multi.subscribers)  # "a/#" matches "a" and everything below it
        if index == len(levels):
            _merge(found, node.subscribers)
            return
        child = node.children.get(levels[index])
        if child is not None:
            self._collect(child, levels, index + 1, found, dollar)
        single = node.children.get("+") if wildcards_allowed else None
        if single is not None:
            self._collect(single, levels, index + 1, found, dollar)


@dataclass(eq=False, slots=True)
class _TopicNode(Generic[V]):
    children: dict[str, _TopicNode[V]] = field(default_factory=dict)
    value: V | None = None
    has_value: bool = False


class RetainedTree(Generic[V]):
    """Retained values by topic name, found by filter without scanning unrelated topics."""

    def __init__(self) -> None:
        self._root: _TopicNode[V] = _TopicNode()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def set(self, topic: TopicName, value: V) -> None:
        """Store (or replace) the retained value of ``topic``."""
        node = self._root
        for level in topic.levels:
            node = node.children.setdefault(level, _TopicNode())
        if not node.has_value:
            self._count += 1
        node.value, node.has_value = value, True

    def get(self, topic: str) -> V | None:
        """The retained value of exactly ``topic``, if any."""
        node: _TopicNode[V] | None = self._root
        for level in topic.split("/"):
            node = node.children.get(level) if node is not None else None
        return node.value if node is not None and node.has_value else None

    def delete(self, topic: str) -> bool:
        """Forget the retained value of ``topic``; returns whether there was one."""
        levels = topic.split("/")
        path = [self._root]
        for level in levels:
            child = path[-1].children.get(level)
            if child is None:
                return False
            path.append(child)
        if not path[-1].has_value:
            return False
        path[-1].value, path[-1].has_value = None, False
        self._count -= 1
        for depth in range(len(levels), 0, -1):
            node = path[depth]
            if node.has_value or node.children:
                break
            del path[depth - 1].children[levels[depth - 1]]
        return True

    def clear(self) -> None:
        """Forget everything."""
        self._root, self._count = _TopicNode(), 0

    def match(self, topic_filter: TopicFilter) -> Iterator[tuple[str, V]]:
        """Yield ``(topic, value)`` for every retained topic matching ``topic_filter``."""
        yield from self._walk(self._root, topic_filter.levels, 0, [])

    def _walk(
        self, node: _TopicNode[V], levels: tuple[str, ...], index: int, path: list[str]
    ) -> Iterator[tuple[str, V]]:
        if index == len(levels):
            if node.has_value:
                yield "/".join(path), node.value  # type: ignore[misc]
            return
        level = levels[index]
        if level == "#":
            yield from self._subtree(node, path, skip_dollar=index == 0)
        elif level == "+":
            for name, child in node.children.items():
                if not (index == 0 and name.startswith("$")):
                    yield from self._walk(child, levels, index + 1, [*path, name])
        elif (exact := node.children.get(level)) is not None:
            yield from self._walk(exact, levels, index + 1, [*path, level])

    def _subtree(self, node: _TopicNode[V], path: list[str], skip_dollar: bool) -> Iterator[tuple[str, V]]:
        if node.has_value and path:
            yield "/".join(path), node.value  # type: ignore[misc]
        for name, child in node.children.items():
            if not (skip_dollar and name.startswith("$")):
                yield from self._subtree(child, [*path, name], skip_dollar=False)
