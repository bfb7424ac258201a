"""Blynk's device topics, and the topic rules of the broker: MQTT syntax, the device ACL and
the per-device mount.

Pure functions and value objects only (no I/O, no amqtt), so they are unit-tested on their own.

**The table.** :class:`Uplink` (device -> server) and :class:`Downlink` (server -> device) are
Blynk's device MQTT API (its topic list): each member is one topic pattern, where a
level written ``<name>`` is chosen by the user (a datastream, property, event code or metadata
name), with the kind of payload it carries (:class:`PayloadKind`). Everything else is derived
from them: the broker's ACL, the downlinks delivered without a subscription, the filters the
backend's ingest subscribes to (:func:`uplink_filters`) and its dispatch, a dict from
:class:`Uplink` to handler (``backend.ingest.service``). Adding a topic means adding a member
here and, for an uplink, its ingest handler (a test fails until both exist).

Internal namespace: every topic of device 42 lives under ``d/42/``. The device itself only
ever sees the part after that prefix (``ds/Temp``, ``downlink/ds/Power``).

* A device may **publish** only Blynk uplink topics (:func:`match_uplink`,
  :func:`is_uplink_topic`).
* A device may **subscribe** only to filters under ``downlink/`` where ``#`` may appear only as
  the whole last level and ``+`` not at all (:func:`is_device_filter_allowed`).
* ``downlink/diag``, ``downlink/redirect`` and ``downlink/ota/json`` reach the device even
  without a subscription, at QoS 0; ``downlink/ping`` too, always at QoS 1 (the device's PUBACK
  is the answer the broker times). A device subscribed to them gets each message once
  (:func:`always_delivered_device`, :data:`ALWAYS_DELIVERED`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from broker.errors import InvalidTopicError

__all__ = [
    "ALWAYS_DELIVERED",
    "DIAG_TOPIC",
    "OTA_TOPIC",
    "PING_TOPIC",
    "GATEWAY_PREFIX",
    "DeviceMount",
    "Downlink",
    "PayloadKind",
    "TopicFilter",
    "TopicName",
    "Uplink",
    "UplinkMatch",
    "always_delivered_device",
    "device_of",
    "gateway_device_filter",
    "is_device_filter_allowed",
    "is_ping_topic",
    "is_uplink_topic",
    "match_uplink",
    "presence_topic",
    "split_gateway_topic",
    "uplink_filters",
    "valid_publish_topic",
]


class PayloadKind(Enum):
    """What a device topic carries."""

    TEXT = "plain text (a value, a description; multi-value items separated by NUL)"
    JSON_OBJECT = "a JSON object"
    JSON_ARRAY = "a JSON array ([[ts_ms, value], ...])"
    NAMES = "comma-separated names"
    EMPTY = "nothing (ignored)"
    URI = "an endpoint URI (mqtt, mqtts, ws or wss)"


def _is_name_level(level: str) -> bool:
    """A user-chosen level (datastream, property, event code, metadata name)."""
    return bool(level) and "+" not in level and "#" not in level and "\x00" not in level


def _pattern_levels(pattern: str) -> tuple[tuple[str, ...], int]:
    """The levels of a table pattern and how many of them are ``<name>`` levels."""
    levels = tuple(pattern.split("/"))
    names = 0
    for level in levels:
        if level.startswith("<") and level.endswith(">"):
            names += 1
        elif not _is_name_level(level) or "<" in level or ">" in level or "{" in level or "}" in level:
            raise ValueError(f"bad level {level!r} in topic pattern {pattern!r}")
    return levels, names


class Uplink(Enum):
    """Blynk's uplink topics, device-relative (what a device may publish).

    ``pattern`` is the topic with ``<...>`` for each user-chosen level, ``payload`` what it
    carries, ``names`` how many ``<...>`` levels it has (their values come in
    :attr:`UplinkMatch.names`, in order).
    """

    INFO_MCU = ("info/mcu", PayloadKind.JSON_OBJECT)
    """Firmware and board: ``{"tmpl", "ver", "build", "type", "rxbuff"}``."""
    VALUE = ("ds/<datastream>", PayloadKind.TEXT)
    BATCH_DS = ("batch_ds", PayloadKind.JSON_OBJECT)
    """Values by datastream name."""
    TIMESTAMPED_BATCH = ("ds/<datastream>/timestamped_batch", PayloadKind.JSON_ARRAY)
    ERASE = ("ds/<datastream>/erase", PayloadKind.EMPTY)
    PROPERTY = ("ds/<datastream>/prop/<property>", PayloadKind.TEXT)
    PROPERTY_ERASE = ("ds/<datastream>/prop/<property>/erase", PayloadKind.EMPTY)
    EVENT = ("event/<code>", PayloadKind.TEXT)
    """Empty: the event definition's description."""
    META = ("meta/<name>", PayloadKind.TEXT)
    GET_DS = ("get/ds", PayloadKind.NAMES)
    """Answered on :attr:`Downlink.VALUE`."""
    GET_DS_ALL = ("get/ds/all", PayloadKind.EMPTY)
    """Answered on :attr:`Downlink.VALUE` for the datastreams with "Sync with latest server value"."""
    GET_META = ("get/meta", PayloadKind.NAMES)
    """Answered on :attr:`Downlink.META`."""
    GET_UTC = ("get/utc/all/json", PayloadKind.EMPTY)
    """Answered on :attr:`Downlink.UTC`."""
    GET_LOC = ("get/loc/all", PayloadKind.EMPTY)
    """Answered on :attr:`Downlink.LOCATION`."""
    OTA_STATUS = ("ota/status", PayloadKind.JSON_OBJECT)
    """openblynk's Blynk.Air progress report: ``{"status", "bytes", "error"}``."""
    CLAIM_OPEN = ("claim/open", PayloadKind.JSON_OBJECT)
    """openblynk's headless claiming: an unclaimed static-token device opens a claim window
    ``{"pin", "proof", "ttl"}`` (``backend/inject/windows.py``)."""

    def __init__(self, pattern: str, payload: PayloadKind) -> None:
        self.pattern = pattern
        self.payload = payload
        self.levels, self.names = _pattern_levels(pattern)


class Downlink(Enum):
    """Blynk's downlink topics, device-relative (what the server sends a device).

    ``unsubscribed``: delivered even to a device that did not subscribe (at ``qos``).
    """

    VALUE = ("downlink/ds/<datastream>", PayloadKind.TEXT)
    META = ("downlink/meta/<name>", PayloadKind.TEXT)
    OTA = ("downlink/ota/json", PayloadKind.JSON_OBJECT, True)
    """Blynk.Air offer: ``{"url", "size", "type", "ver", "build"}``; also when retained."""
    UTC = ("downlink/utc/all/json", PayloadKind.JSON_OBJECT)
    LOCATION = ("downlink/loc/all", PayloadKind.TEXT)
    """``lat,lon``."""
    PING = ("downlink/ping", PayloadKind.EMPTY, True, 1)
    """Console "Device Menu -> Ping": the broker reports the PUBACK's round trip."""
    REBOOT = ("downlink/reboot", PayloadKind.EMPTY)
    RECONFIGURE = ("downlink/reconfigure", PayloadKind.EMPTY)
    REDIRECT = ("downlink/redirect", PayloadKind.URI, True)
    DIAG = ("downlink/diag", PayloadKind.TEXT, True)
    """Why something the device did was refused."""
    GET_INFO = ("downlink/get/info/mcu", PayloadKind.EMPTY)
    """openblynk's console "Device Menu -> Request info": the device should publish ``info/mcu``
    again. Blynk documents no such downlink (reference §1.4); the name is its ``get/<topic>``
    request form (``get/ds`` is answered on ``ds/...``) under ``downlink/``. openblynk's
    ``device_sdk`` answers it; devices on Blynk's own libraries ignore it (no answer)."""

    def __init__(self, pattern: str, payload: PayloadKind, unsubscribed: bool = False, qos: int = 0) -> None:
        self.pattern = pattern
        self.payload = payload
        self.unsubscribed = unsubscribed
        self.qos = qos
        self.levels, self.names = _pattern_levels(pattern)
        self._format = "/".join("{}" if level.startswith("<") else level for level in self.levels)

    def topic(self, *names: str) -> str:
        """The device-relative topic with its ``<...>`` levels filled in, in order
        (``Downlink.VALUE.topic("Power")`` -> ``downlink/ds/Power``)."""
        if len(names) != self.names:
            raise ValueError(f"{self.pattern} takes {self.names} names, got {len(names)}")
        return self._format.format(*names) if names else self.pattern


DIAG_TOPIC = Downlink.DIAG.pattern
"""Where the broker tells a device why something it did was refused (plain text)."""
OTA_TOPIC = Downlink.OTA.pattern
"""Blynk.Air offer; delivered (also when retained) without a subscription."""
PING_TOPIC = Downlink.PING.pattern
"""Console "Device Menu -> Ping": delivered at QoS 1; the broker reports the PUBACK's round trip."""
ALWAYS_DELIVERED = frozenset(downlink.pattern for downlink in Downlink if downlink.unsubscribed)
"""Device-relative topics delivered even if the device never subscribed (Blynk); all at QoS 0
except :data:`PING_TOPIC`."""


class UplinkMatch(NamedTuple):
    """Which uplink a device-relative topic is, and the values of its ``<...>`` levels."""

    uplink: Uplink
    names: tuple[str, ...]


class _Node:
    """One level of the uplink tree: fixed words, or one ``<name>`` child (never both, so a
    topic is matched in one pass with no backtracking)."""

    __slots__ = ("entry", "name", "words")

    def __init__(self) -> None:
        self.words: dict[str, _Node] = {}
        self.name: _Node | None = None
        self.entry: Uplink | None = None


def _uplink_tree() -> _Node:
    root = _Node()
    for uplink in Uplink:
        node = root
        for level in uplink.levels:
            if level.startswith("<"):
                node.name = node.name or _Node()
                child = node.name
            else:
                child = node.words.setdefault(level, _Node())
            if node.name is not None and node.words:
                raise ValueError(f"{uplink.pattern}: a level is both fixed words and a <name>")
            node = child
        if node.entry is not None:
            raise ValueError(f"{uplink.pattern} has the shape of {node.entry.pattern}")
        node.entry = uplink
    return root


_UPLINKS = _uplink_tree()


def match_uplink(topic: str) -> UplinkMatch | None:
    """The uplink a device-relative ``topic`` is, with its names; None if it is none (then a
    device may not publish it). One dict lookup per level."""
    if topic.startswith("$"):
        return None
    node = _UPLINKS
    names: list[str] = []
    for level in topic.split("/"):
        child = node.words.get(level)
        if child is None:
            child = node.name
            if child is None or not _is_name_level(level):
                return None
            names.append(level)
        node = child
    return None if node.entry is None else UplinkMatch(node.entry, tuple(names))


def valid_publish_topic(topic: str) -> bool:
    """Whether a PUBLISH may name ``topic`` at all: not empty, no wildcard, no NUL character
    ([MQTT-4.7.3-1], [MQTT-3.3.2-2], [MQTT-1.5.3-2]). A client's publish to a ``$`` topic is
    refused separately where the broker forbids it."""
    return bool(topic) and "+" not in topic and "#" not in topic and "\x00" not in topic


def is_uplink_topic(topic: str) -> bool:
    """Whether a device may publish to the device-relative ``topic`` (Blynk uplink list)."""
    return match_uplink(topic) is not None


def uplink_filters() -> list[str]:
    """Device-relative filters that together match every uplink, one per first level: the
    topic itself where only one fixed topic starts with that level, else ``<level>/#`` (which
    also matches topics the ACL refuses; no device can publish those)."""
    first: dict[str, list[Uplink]] = {}
    for uplink in Uplink:
        first.setdefault(uplink.levels[0], []).append(uplink)
    return [
        group[0].pattern if len(group) == 1 and not group[0].names else f"{head}/#" for head, group in first.items()
    ]


_MAX_TOPIC_BYTES = 65535


def _check_common(value: str, what: str) -> None:
    if not value:
        raise InvalidTopicError(f"{what} must not be empty")
    if "\x00" in value:
        raise InvalidTopicError(f"{what} must not contain NUL: {value!r}")
    if len(value.encode("utf-8", "surrogatepass")) > _MAX_TOPIC_BYTES:
        raise InvalidTopicError(f"{what} is longer than {_MAX_TOPIC_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class TopicName:
    """A topic a message is published to: no wildcards, no NUL, not empty."""

    value: str
    levels: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_common(self.value, "topic name")
        if "+" in self.value or "#" in self.value:
            raise InvalidTopicError(f"topic name must not contain wildcards: {self.value!r}")
        object.__setattr__(self, "levels", tuple(self.value.split("/")))

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class TopicFilter:
    """A subscription filter, valid per MQTT 3.1.1 §4.7.1 (``#`` last and alone, ``+`` alone)."""

    value: str
    levels: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_common(self.value, "topic filter")
        levels = tuple(self.value.split("/"))
        for index, level in enumerate(levels):
            if "#" in level and (level != "#" or index != len(levels) - 1):
                raise InvalidTopicError(f"'#' must be the whole last level: {self.value!r}")
            if "+" in level and level != "+":
                raise InvalidTopicError(f"'+' must be a whole level: {self.value!r}")
        object.__setattr__(self, "levels", levels)

    @property
    def is_exact(self) -> bool:
        """True if the filter has no wildcard and so matches exactly one topic."""
        return "+" not in self.levels and "#" not in self.levels

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` matches this filter (a plain reference matcher, level by level)."""
        if topic.startswith("$") and self.levels[0] in ("+", "#"):
            return False  # [MQTT-4.7.2-1]
        topic_levels = topic.split("/")
        for index, level in enumerate(self.levels):
            if level == "#":
                return True
            if index >= len(topic_levels) or level not in ("+", topic_levels[index]):
                return False
        return len(topic_levels) == len(self.levels)

    def __str__(self) -> str:
        return self.value


def is_device_filter_allowed(topic_filter: str) -> bool:
    """Whether a device may subscribe to the device-relative ``topic_filter``.

    Only filters under ``downlink/``; ``#`` only as the whole last level; no ``+``; no empty
    levels (Blynk topics never have them).
    """
    try:
        parsed = TopicFilter(topic_filter)
    except InvalidTopicError:
        return False
    levels = parsed.levels
    return len(levels) >= 2 and levels[0] == "downlink" and "+" not in levels and all(levels)


@dataclass(frozen=True, slots=True)
class PrefixMount:
    """A prefix a client's topics live under in the broker: a device's ``d/<id>/``
    (:class:`DeviceMount`) or an organization's ``o/<id>/`` (``broker.namespace.Namespace``).
    Subclasses set :attr:`prefix` in ``__post_init__``."""

    prefix: str = field(init=False, repr=False, compare=False)

    def mount(self, relative: str) -> str:
        """Client topic or filter -> broker topic (``ds/T`` -> ``d/42/ds/T``)."""
        return self.prefix + relative

    def unmount(self, topic: str) -> str | None:
        """Broker topic -> client topic, or ``None`` if it is not under this prefix."""
        if topic.startswith(self.prefix) and len(topic) > len(self.prefix):
            return topic[len(self.prefix) :]
        return None


@dataclass(frozen=True, slots=True)
class DeviceMount(PrefixMount):
    """The ``d/<device_id>/`` prefix a device's session lives under."""

    device_id: int

    def __post_init__(self) -> None:
        if self.device_id <= 0:
            raise InvalidTopicError(f"device_id must be positive, got {self.device_id}")
        object.__setattr__(self, "prefix", f"d/{self.device_id}/")


GATEWAY_PREFIX = "dev/"
"""Blynk's MQTT Gateway API: a gateway writes each device topic as ``dev/<device token>/<topic>``."""


def split_gateway_topic(topic: str) -> tuple[str, str] | None:
    """``dev/<token>/<rest>`` -> ``(token, rest)``, or ``None`` if ``topic`` (a name or a filter)
    is not of that shape: the token level empty or holding a wildcard, or nothing after it.
    So ``#``, ``dev/#`` and ``dev/+/...`` are never a gateway's (Blynk forbids wildcards there)."""
    if not topic.startswith(GATEWAY_PREFIX):
        return None
    token, slash, rest = topic[len(GATEWAY_PREFIX) :].partition("/")
    if not slash or not rest or not _is_name_level(token):
        return None
    return token, rest


def gateway_device_filter(relative: str) -> str | None:
    """The device-relative filter a gateway's ``dev/<token>/<relative>`` subscription stands for.

    ``#`` (Blynk allows ``dev/<token>/#``) means every downlink, ``downlink/#``: a device only
    ever receives downlinks, and the gateway's own uplinks must not come back to it. Any filter
    a device itself may hold means itself; anything else ``None`` (refused).
    """
    if relative == "#":
        return "downlink/#"
    return relative if is_device_filter_allowed(relative) else None


def device_of(topic: str) -> int | None:
    """The device id of a broker topic ``d/<id>/...``, else ``None``."""
    if not topic.startswith("d/"):
        return None
    device, slash, _ = topic[2:].partition("/")
    if not slash or not device.isdigit() or device.startswith("0"):
        return None
    return int(device)


def always_delivered_device(topic: str) -> int | None:
    """The device id if ``topic`` is ``d/<id>/<always-delivered downlink>``, else ``None``."""
    if not topic.startswith("d/"):
        return None
    _, _, rest = topic.partition("/")
    device, _, relative = rest.partition("/")
    if relative not in ALWAYS_DELIVERED or not device.isdigit() or device.startswith("0"):
        return None
    return int(device)


def is_ping_topic(topic: str) -> bool:
    """Whether ``topic`` is ``d/<id>/downlink/ping`` (the broker times the device's PUBACK)."""
    return topic.endswith("/" + PING_TOPIC) and always_delivered_device(topic) is not None


def presence_topic(device_id: int) -> str:
    """Where the broker publishes a device's online/offline state."""
    return f"sys/presence/{device_id}"
