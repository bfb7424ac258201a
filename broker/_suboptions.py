"""MQTT 5 subscription options and identifiers, kept beside the broker's 3.1.1 subscriptions.

The subscription index (:class:`broker.trie.SubscriptionIndex`) holds a session's filters with
their QoS, as MQTT 3.1.1 has them. What an MQTT 5 SUBSCRIBE adds (§3.8.3.1, §3.8.2.1.2) is
kept here, per session and filter, for the filters an MQTT 5 client subscribed to:

- no local: the session's own publishes are not sent back to it through that filter;
- retain as published: a message routed live keeps the RETAIN flag it was published with
  (3.1.1 and MQTT 5's default send it 0);
- the subscription identifier, sent with each message that the filter matched.

Retain handling (0: retained messages on subscribe, 1: only for a new subscription, 2: none)
is decided once, when the SUBSCRIBE is handled, and is not kept. Shared subscriptions
(``$share/...``) keep no options: MQTT 5 forbids no local on them, and a message taken
through one carries no identifier here. Sessions are weakly referenced: a discarded session's
options go with it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from broker.topics import TopicFilter

__all__ = ["Options", "SubscriptionOptions", "identifiers", "keeps_retain", "only_local", "options_of"]


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """One MQTT 5 subscription's options."""

    inside: TopicFilter
    """The filter as the broker holds it (under a device's or organization's prefix)."""
    outside: TopicFilter
    """The filter as the client wrote it (the topics it is sent are in that form)."""
    no_local: bool = False
    retain_as_published: bool = False
    identifier: int | None = None


Options = dict[str, SubscriptionOptions]
"""Inside filter -> its options, for one session."""

_OPTIONS: weakref.WeakKeyDictionary[Any, Options] = weakref.WeakKeyDictionary()


def options_of(session: object, create: bool = False) -> Options | None:
    """The options of ``session``'s MQTT 5 subscriptions (None: it has none and ``create`` is False)."""
    found = _OPTIONS.get(session)
    if found is None and create:
        found = _OPTIONS[session] = {}
    return found


def only_local(options: Options, topic: str) -> bool:
    """Whether every filter of the session kept here matching ``topic`` (inside form) is no-local."""
    matching = [o for o in options.values() if o.inside.matches(topic)]
    return bool(matching) and all(o.no_local for o in matching)


def keeps_retain(options: Options, topic: str) -> bool:
    """Whether a filter of the session matching ``topic`` (inside form) is retain-as-published."""
    return any(o.retain_as_published and o.inside.matches(topic) for o in options.values())


def identifiers(options: Options, outside_topic: str) -> list[int]:
    """The subscription identifiers of the filters matching ``outside_topic`` (as the client sees it)."""
    return [o.identifier for o in options.values() if o.identifier is not None and o.outside.matches(outside_topic)]
