"""Shared subscriptions: ``$share/<group>/<filter>``, accepted on MQTT 3.1.1 as Mosquitto and EMQX do.

Every session that subscribes to ``$share/<group>/<filter>`` becomes a *member* of the group
``(<group>, <filter>)``; a message matching ``<filter>`` goes to **one** member of each matching
group, besides every ordinary subscriber. ACL and mounting apply to the inner filter exactly as
to an ordinary one (the broker-side filter is part of the group's key, so groups of the same
name in different namespaces never mix). Devices and gateways may not share-subscribe.

Choosing a member: by the message's *key* (:func:`sticky_key`: its device for ``d/<id>/...``
and ``sys/<report>/<id>``, else the whole topic), with rendezvous hashing over the connected
members (as EMQX's ``hash_topic`` strategy). So all of one device's messages go to the same
member, in order, while the members stay the same (what the app's replicas need: a device's
values are stored, and its automation rules evaluated, in one process), and when a member
comes or goes only the keys it had or gets move. A member whose outbox is full keeps its keys:
a persistent one queues them in its backlog (order kept), a clean one is disconnected as a slow
consumer, as for an ordinary subscription. A QoS 1/2 message for a group whose members are all
offline waits in the group's own bounded queue if one member is persistent, and goes to the
first member that connects again (else it is dropped, as for a clean session).

A member that disconnects: the QoS 1/2 messages the group gave it and it has not acknowledged
(``inflight_out``) and those waiting in its backlog are taken away from it and given to
another member at once (or to the group's queue). So a persistent member keeps its *own*
subscriptions' queue across a reconnect, but what it got through a shared subscription moves
on to the rest of the group: a message is never held for a member that crashed, and it may be
delivered twice (the crashed member may have handled it without acknowledging): at least once.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass, field

from broker._session import BrokerSession, Pending
from broker.errors import InvalidTopicError
from broker.topics import TopicFilter
from broker.trie import SubscriptionIndex

__all__ = ["SHARE_PREFIX", "SharedGroup", "SharedSubscriptions", "member_for", "split_shared", "sticky_key"]

SHARE_PREFIX = "$share/"


def sticky_key(topic: str) -> bytes:
    """What decides the member: ``d/<id>`` for a device's topics and the broker's reports on it
    (``d/<id>/...``, ``sys/presence/<id>``, ``sys/vitals/<id>``, ``sys/ping/<id>``), else the topic."""
    levels = topic.split("/", 3)
    if levels[0] == "d" and len(levels) > 2:
        return f"d/{levels[1]}".encode()
    if levels[0] == "sys" and len(levels) == 3:
        return f"d/{levels[2]}".encode()
    return topic.encode()


def split_shared(raw_filter: str) -> tuple[str, str] | None:
    """``(group, inner filter)`` of a ``$share/`` filter, None for an ordinary filter.

    Raises :class:`InvalidTopicError` for a malformed one (no group, a wildcard in the group,
    no inner filter).
    """
    if not raw_filter.startswith(SHARE_PREFIX):
        return None
    group, sep, inner = raw_filter[len(SHARE_PREFIX) :].partition("/")
    if not sep or not group or not inner or "+" in group or "#" in group:
        raise InvalidTopicError(f"malformed shared subscription: {raw_filter!r}")
    return group, inner


def _weight(key: bytes, member: bytes) -> int:
    """Rendezvous weight of ``member`` for ``key``: CRC-32 then MurmurHash3's finalizer (CRC
    alone is affine, so members would rank alike for many keys); the same in every run."""
    h = zlib.crc32(member, zlib.crc32(key))
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def member_for(topic: str, members: list[str]) -> str:
    """Which of ``members`` (session keys, ``svc:<client id>``) a message on ``topic`` goes to
    while exactly those are connected (for tests and diagnostics)."""
    key = sticky_key(topic)
    return max(members, key=lambda member: _weight(key, member.encode()))


@dataclass(eq=False)
class SharedGroup:
    """The members of one ``$share/<name>/<filter>`` and the messages waiting for one."""

    name: str
    topic_filter: TopicFilter
    """The broker-side inner filter."""
    members: dict[BrokerSession, int] = field(default_factory=dict)
    """Member -> granted QoS, in joining order."""
    pending: deque[Pending] = field(default_factory=deque)
    """QoS 1/2 messages that found no connected member (bounded, see :meth:`SharedSubscriptions.queue`)."""

    def pick(self, topic: str) -> tuple[BrokerSession, int] | None:
        """The connected member a message on ``topic`` goes to (rendezvous hashing of its
        :func:`sticky_key`; no hashing while one member is connected) with its QoS, or None."""
        if len(self.members) == 1:  # the usual case: the app's one ingest connection
            ((session, qos),) = self.members.items()
            return (session, qos) if _reachable(session) else None
        connected = [(session, qos) for session, qos in self.members.items() if _reachable(session)]
        if len(connected) < 2:
            return connected[0] if connected else None
        key = sticky_key(topic)
        return max(connected, key=lambda member: _weight(key, (member[0].client_id or "").encode()))

    @property
    def persistent(self) -> bool:
        """Whether a member keeps its session: messages then wait for the group."""
        return any(not session.clean_session for session in self.members)


def _reachable(session: BrokerSession) -> bool:
    """Whether a member can be sent a message now: connected, its connection not closing."""
    connection = session.connection
    return session.transitions.state == "connected" and connection is not None and not connection.closed


class SharedSubscriptions:
    """Every shared group, indexed like ordinary subscriptions (one lookup per published topic)."""

    def __init__(self, queue_limit: int = 100_000) -> None:
        self.index: SubscriptionIndex[SharedGroup] = SubscriptionIndex()
        self.groups: dict[tuple[str, str], SharedGroup] = {}
        self.of_session: dict[BrokerSession, dict[tuple[str, str], SharedGroup]] = {}
        self.queue_limit = queue_limit
        self.dropped = 0
        """QoS 1/2 messages dropped: no member was connected and the group's queue was full."""

    def count(self, session: BrokerSession) -> int:
        """Shared subscriptions ``session`` holds."""
        return len(self.of_session.get(session, ()))

    def holds(self, session: BrokerSession, name: str, topic_filter: str) -> bool:
        """Whether ``session`` is a member of ``(name, topic_filter)``."""
        return (name, topic_filter) in self.of_session.get(session, {})

    def add(self, session: BrokerSession, name: str, topic_filter: TopicFilter, qos: int) -> SharedGroup:
        """Make ``session`` a member (or change its QoS); the group."""
        key = (name, topic_filter.value)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = SharedGroup(name, topic_filter)
            self.index.add(topic_filter, group, 0)
        group.members[session] = qos
        self.of_session.setdefault(session, {})[key] = group
        return group

    def remove(self, session: BrokerSession, name: str, topic_filter: TopicFilter) -> SharedGroup | None:
        """End one membership; the group if it still has members (its queue must find one)."""
        key = (name, topic_filter.value)
        groups = self.of_session.get(session)
        group = groups.pop(key, None) if groups is not None else None
        if groups is not None and not groups:
            del self.of_session[session]
        if group is None:
            return None
        group.members.pop(session, None)
        if not group.members:
            del self.groups[key]
            self.index.remove(group.topic_filter, group)
            return None
        return group

    def remove_session(self, session: BrokerSession) -> list[SharedGroup]:
        """End every membership of ``session``; the groups that still have members."""
        left = []
        for name, topic_filter in list(self.of_session.get(session, {})):
            group = self.remove(session, name, TopicFilter(topic_filter))
            if group is not None:
                left.append(group)
        return left

    def member_groups(self, session: BrokerSession) -> list[SharedGroup]:
        """The groups ``session`` is a member of."""
        return list(self.of_session.get(session, {}).values())

    def match(self, topic: str) -> list[SharedGroup]:
        """The groups a published topic reaches."""
        return list(self.index.match(topic))

    def queue(self, group: SharedGroup, message: Pending) -> bool:
        """Keep a message for a group with no connected member; False if it was dropped.

        A message holding a publisher's withheld PUBACK (``broker._acks``) is kept past
        ``queue_limit``: the publishers' inflight limits bound those."""
        if not group.persistent or (len(group.pending) >= self.queue_limit and message.receipt is None):
            self.dropped += 1
            return False
        group.pending.append(message)
        return True
