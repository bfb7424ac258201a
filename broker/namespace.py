"""An organization's own MQTT namespace: what an integration client may publish and subscribe.

Pure functions and a value object (no I/O, no amqtt), unit-tested on their own.

An integration client (:class:`broker.identity.IntegrationIdentity`) sees a whole MQTT 3.1.1
broker of its own. Inside the broker every topic of organization 7 lives under ``o/7/``: the
client writes ``home/kitchen/temp``, the broker routes ``o/7/home/kitchen/temp`` and strips the
prefix again on the way out (``broker._handler``), so no client can name, match or receive a
topic of another organization, of a device (``d/<id>/``) or of the platform (``sys/...``).

Inside the namespace:

* Topics starting with ``$`` are not the client's ([MQTT-4.7.2-1]): a publish there is dropped,
  a filter starting with ``$`` (``$SYS/#``, ``$share/...``) gets SUBACK 0x80.
* ``dev/`` is reserved for the platform's read-only device feed, written by the app:
  ``dev/<device id>/ds/<datastream>`` (a value), ``dev/<device id>/event/<code>`` (an event),
  ``dev/<device id>/online`` (``1``/``0``). A client may subscribe to ``dev/#`` or to a filter
  ``dev/<device id or +>/...``; any other ``dev/`` filter gets 0x80. The one topic a client may
  publish there is ``dev/<device id>/set/<datastream>`` (a downlink write, never retained). It
  is not routed inside the namespace but to the app, on ``sys/integration/write/<key>/<device
  id>/<datastream>`` (:func:`write_topic`; ``<key>`` names the client's credentials), which checks
  it with the client's own permissions and applies it like the HTTP API (:data:`WRITE_FILTER`).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.errors import InvalidTopicError
from broker.topics import PrefixMount

__all__ = [
    "FEED_PREFIX",
    "WRITE_FILTER",
    "Namespace",
    "is_namespace_filter_allowed",
    "namespace_publish",
    "parse_write",
    "write_topic",
]

FEED_PREFIX = "dev/"
"""The reserved top level of a namespace: the device feed and downlink writes."""
WRITE_PREFIX = "sys/integration/write/"
WRITE_FILTER = WRITE_PREFIX + "+/+/+"
"""What the app subscribes to for integration writes (:func:`write_topic`)."""


def _is_device_level(level: str) -> bool:
    return level.isascii() and level.isdigit() and not level.startswith("0")


@dataclass(frozen=True, slots=True)
class Namespace(PrefixMount):
    """The ``o/<org_id>/`` prefix an organization's integration topics live under
    (``mount``: ``a/b`` -> ``o/7/a/b``)."""

    org_id: int

    def __post_init__(self) -> None:
        if self.org_id <= 0:
            raise InvalidTopicError(f"org_id must be positive, got {self.org_id}")
        object.__setattr__(self, "prefix", f"o/{self.org_id}/")


def is_namespace_filter_allowed(raw_filter: str) -> bool:
    """Whether a client may subscribe to ``raw_filter`` (MQTT syntax is checked elsewhere)."""
    if not raw_filter or raw_filter.startswith("$"):
        return False
    if not raw_filter.startswith(FEED_PREFIX) and raw_filter != "dev":
        return True
    levels = raw_filter.split("/")
    if raw_filter in ("dev", "dev/#"):
        return True
    return len(levels) >= 3 and (levels[1] == "+" or _is_device_level(levels[1]))


def parse_write(relative: str) -> tuple[int, str] | None:
    """``dev/<device id>/set/<datastream>`` -> ``(device id, datastream)``, else None."""
    levels = relative.split("/")
    if len(levels) != 4 or levels[0] != "dev" or levels[2] != "set" or not _is_device_level(levels[1]):
        return None
    name = levels[3]
    if not name or "+" in name or "#" in name:
        return None
    return int(levels[1]), name


def write_topic(key: str, device_id: int, name: str) -> str:
    """The internal topic a client's ``dev/<device_id>/set/<name>`` goes to (to the app only)."""
    return f"{WRITE_PREFIX}{key}/{device_id}/{name}"


def namespace_publish(relative: str, retain: bool) -> bool:
    """Whether a client's publish to ``relative`` is routed (else it is dropped).

    ``$`` topics and the feed are not the client's to write; a write to
    ``dev/<id>/set/<name>`` is, but never retained."""
    if relative.startswith("$"):
        return False
    if relative.startswith(FEED_PREFIX) or relative == "dev":
        return not retain and parse_write(relative) is not None
    return True
