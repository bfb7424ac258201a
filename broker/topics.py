"""Topic rules of the broker: MQTT syntax, Blynk's device ACL and the per-device mount.

Pure functions and value objects only (no I/O, no amqtt), so they are unit-tested on their own.

Internal namespace: every topic of device 42 lives under ``d/42/``. The device itself only
ever sees the part after that prefix (``ds/Temp``, ``downlink/ds/Power``).

* A device may **publish** only Blynk uplink topics (:func:`is_uplink_topic`).
* A device may **subscribe** only to filters under ``downlink/`` where ``#`` may appear only as
  the whole last level and ``+`` not at all (:func:`is_device_filter_allowed`).
* ``downlink/diag``, ``downlink/redirect`` and ``downlink/ota/json`` reach the device even
  without a subscription, at QoS 0; ``downlink/ping`` too, always at QoS 1 (the device's PUBACK
  is the answer the broker times). A device subscribed to them gets each message once
  (:func:`always_delivered_device`, :data:`ALWAYS_DELIVERED`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.errors import InvalidTopicError

__all__ = [
    "ALWAYS_DELIVERED",
    "DIAG_TOPIC",
    "OTA_TOPIC",
    "PING_TOPIC",
    "DeviceMount",
    "TopicFilter",
    "TopicName",
    "always_delivered_device",
    "is_device_filter_allowed",
    "is_ping_topic",
    "is_uplink_topic",
    "presence_topic",
]

DIAG_TOPIC = "downlink/diag"
"""Where the broker tells a device why something it did was refused (plain text)."""
OTA_TOPIC = "downlink/ota/json"
"""Blynk.Air offer; delivered (also when retained) without a subscription."""
PING_TOPIC = "downlink/ping"
"""Console "Device Menu -> Ping": delivered at QoS 1; the broker reports the PUBACK's round trip."""
ALWAYS_DELIVERED = frozenset({DIAG_TOPIC, "downlink/redirect", OTA_TOPIC, PING_TOPIC})
"""Device-relative topics delivered even if the device never subscribed (Blynk); all at QoS 0
except :data:`PING_TOPIC`."""

_MAX_TOPIC_BYTES = 65535
_NAME = "*"  # placeholder for a user-chosen name level in the uplink patterns below
_UPLINK_PATTERNS: frozenset[tuple[str, ...]] = frozenset(
    {
        ("info", "mcu"),
        ("batch_ds",),
        ("ds", _NAME),
        ("ds", _NAME, "erase"),
        ("ds", _NAME, "timestamped_batch"),
        ("ds", _NAME, "prop", _NAME),
        ("ds", _NAME, "prop", _NAME, "erase"),
        ("event", _NAME),
        ("meta", _NAME),
        ("get", "ds"),
        ("get", "ds", "all"),
        ("get", "meta"),
        ("get", "utc", "all", "json"),
        ("get", "loc", "all"),
        ("ota", "status"),
    }
)
_UPLINK_DEPTHS = frozenset(len(p) for p in _UPLINK_PATTERNS)


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


def _is_name_level(level: str) -> bool:
    """A user-chosen level (datastream, property, event code, metadata name)."""
    return bool(level) and "+" not in level and "#" not in level and "\x00" not in level


def is_uplink_topic(topic: str) -> bool:
    """Whether a device may publish to the device-relative ``topic`` (Blynk uplink list)."""
    if not topic or topic.startswith("$"):
        return False
    levels = topic.split("/")
    if len(levels) not in _UPLINK_DEPTHS or not all(_is_name_level(level) for level in levels):
        return False
    return any(
        len(pattern) == len(levels)
        and all(p == _NAME or p == level for p, level in zip(pattern, levels, strict=True))
        for pattern in _UPLINK_PATTERNS
    )


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
    return (
        len(levels) >= 2
        and levels[0] == "downlink"
        and "+" not in levels
        and all(levels)
    )


@dataclass(frozen=True, slots=True)
class DeviceMount:
    """The ``d/<device_id>/`` prefix a device's session lives under."""

    device_id: int
    prefix: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.device_id <= 0:
            raise InvalidTopicError(f"device_id must be positive, got {self.device_id}")
        object.__setattr__(self, "prefix", f"d/{self.device_id}/")

    def mount(self, relative: str) -> str:
        """Device-relative topic or filter -> broker topic (``ds/T`` -> ``d/42/ds/T``)."""
        return self.prefix + relative

    def unmount(self, topic: str) -> str | None:
        """Broker topic -> device-relative topic, or ``None`` if it is not this device's."""
        if topic.startswith(self.prefix) and len(topic) > len(self.prefix):
            return topic[len(self.prefix) :]
        return None


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
