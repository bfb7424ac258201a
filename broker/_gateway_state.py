"""What the broker keeps for one gateway connection (Blynk's MQTT Gateway API).

A gateway writes device topics as ``dev/<token>/<topic>``; inside the broker each device lives
under its own ``d/<id>/`` as if it were connected directly. :class:`GatewayState` is the map
between the two for one connection: the tokens the gateway used (resolved once through its
:class:`~broker.identity.GatewayScope`, refusals remembered too) and, per device, its rate
limit and traffic counters. :meth:`GatewayState.outward` is the only way back out, so a
message of a device this gateway has not resolved can never be sent to it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from broker._limits import PublishRate
from broker._transport import Meter
from broker.identity import GatewayIdentity
from broker.topics import GATEWAY_PREFIX, DeviceMount, device_of

__all__ = ["GatewayDevice", "GatewayState", "LookupPace", "publish_size"]

REFUSED_CACHE = 4096
"""Refused tokens remembered per connection; beyond that the refusals are forgotten (and asked
again), so a gateway trying random tokens cannot grow the broker's memory."""


def publish_size(topic: str, data: bytes | bytearray, qos: int) -> int:
    """The size of the PUBLISH packet carrying ``data`` on ``topic`` (for the traffic counters)."""
    remaining = 2 + len(topic.encode()) + len(data) + (2 if qos else 0)
    header = 2 if remaining < 128 else 3 if remaining < 16_384 else 4
    return header + remaining


class LookupPace:
    """Spaces the token lookups of one gateway connection: ``rate`` a second after a burst of
    ``rate`` (a token bucket whose debt is the wait)."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = now

    def reserve(self, now: float, max_wait: float) -> float | None:
        """Seconds to wait before the next lookup (its turn is taken), or ``None`` if that would
        be longer than ``max_wait`` (nothing is taken)."""
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        wait = (1 - self.tokens) / self.rate if self.tokens < 1 else 0.0
        if wait > max_wait:
            return None
        self.tokens -= 1
        return wait


@dataclass(eq=False)
class GatewayDevice:
    """A device reached through one gateway connection."""

    device_id: int
    token: str
    rate: PublishRate
    mount: DeviceMount = field(init=False)
    meter: Meter = field(default_factory=Meter)
    online: bool = False
    """The device has spoken through this connection and is shown online."""
    vitals_timer: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.mount = DeviceMount(self.device_id)


class GatewayState:
    """Tokens and devices of one gateway connection (see module docstring)."""

    def __init__(self, identity: GatewayIdentity) -> None:
        self.identity = identity
        self.tokens: dict[str, int | None] = {}
        """Token -> device id, or ``None`` where the scope refused it."""
        self.devices: dict[int, GatewayDevice] = {}
        self.lookups: LookupPace | None = None
        """How fast new tokens may be looked up (set by the broker on the first lookup)."""

    def cached(self, token: str) -> tuple[bool, GatewayDevice | None]:
        """(whether ``token`` was resolved before, the device it resolved to)."""
        if token not in self.tokens:
            return False, None
        device_id = self.tokens[token]
        return True, self.devices.get(device_id) if device_id is not None else None

    def remember(self, token: str, device: GatewayDevice | None) -> GatewayDevice | None:
        """Record what ``token`` resolved to; the record kept for that device is returned."""
        if device is None:
            if sum(1 for v in self.tokens.values() if v is None) >= REFUSED_CACHE:
                self.tokens = {t: d for t, d in self.tokens.items() if d is not None}
            self.tokens[token] = None
            return None
        self.tokens[token] = device.device_id
        known = self.devices.get(device.device_id)
        if known is None:
            self.devices[device.device_id] = known = device
        known.token = token
        return known

    def forget(self, device_id: int) -> GatewayDevice | None:
        """Drop a device and every token that led to it (revoked, deleted, out of scope)."""
        self.tokens = {t: d for t, d in self.tokens.items() if d != device_id}
        return self.devices.pop(device_id, None)

    def forget_refusals(self) -> None:
        """Ask again for tokens refused so far (the scope may have grown)."""
        self.tokens = {t: d for t, d in self.tokens.items() if d is not None}

    def device_at(self, topic: str) -> GatewayDevice | None:
        """The device a broker topic ``d/<id>/...`` belongs to, if this gateway resolved it."""
        device_id = device_of(topic)
        return self.devices.get(device_id) if device_id is not None else None

    def outward(self, topic: str) -> str | None:
        """A broker topic as the gateway sees it: ``d/<id>/<rest>`` -> ``dev/<token>/<rest>``.

        ``dev/...`` passes unchanged (only the broker itself sends those: the diag answering a
        refused token, which the gateway wrote). ``None`` for anything else.
        """
        if topic.startswith(GATEWAY_PREFIX):
            return topic
        device = self.device_at(topic)
        relative = device.mount.unmount(topic) if device is not None else None
        if device is None or relative is None:
            return None
        return f"{GATEWAY_PREFIX}{device.token}/{relative}"

    def count_out(self, topic: str, data: bytes | bytearray, qos: int) -> None:
        """Count one message sent to a device (its ``sys/vitals``)."""
        device = self.device_at(topic)
        if device is not None:
            outward = self.outward(topic) or topic
            device.meter.msgs_out += 1
            device.meter.bytes_out += publish_size(outward, data, qos)
