"""Ingest: turn what devices publish into stored values, device state and replies.

Handles every Blynk uplink under ``d/<id>/`` (the table :class:`broker.topics.Uplink`: values,
``batch_ds``, timestamped batches, erase, widget properties, events, metadata, ``info/mcu``,
``ota/status`` and the ``get/...`` requests), each by its handler in the dict
:attr:`IngestService.handlers`, and the broker's ``sys/presence``, ``sys/vitals`` and ``sys/ping`` reports.
Anything wrong is reported to the device on ``downlink/diag`` and never stops the ingest. Every
device message moves its last-seen time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from backend.devices.context import DeviceServices
from backend.devices.data import DataService, Incoming, downlink_topic
from backend.devices.registry import DeviceInfo, DeviceRegistry
from backend.errors import ValidationError
from backend.ingest.uplinks import MAX_DIAG_NAME, UplinkHandler, Uplinks
from backend.inject.windows import ClaimWindows
from backend.numbers import is_digits
from backend.templates.values import DatastreamSpec
from backend.transport.mqtt import Message
from broker.topics import Downlink, Uplink, match_uplink, uplink_filters

if TYPE_CHECKING:
    from backend.ota.delivery import Delivery

log = logging.getLogger(__name__)

ROUTES_SECONDS = 1.0
"""How long the ingest reuses what it found out about a value topic (its device and
datastream) before asking the device registry again."""

SUBSCRIPTIONS = [
    *(f"d/+/{topic_filter}" for topic_filter in uplink_filters()),
    "sys/presence/+",
    "sys/vitals/+",
    "sys/ping/+",
]
"""What the ingest's broker connection subscribes to: every device's uplinks and the broker's
reports."""

SHARE_GROUP = "openblynk-app"
"""The shared subscription group of the app replicas: each message goes to one of them."""


def app_subscriptions() -> list[str]:
    """:data:`SUBSCRIPTIONS` as shared subscriptions (``$share/openblynk-app/...``): every app
    replica on one broker is a member, and the broker gives each message to one of them (and
    what a replica that dies did not acknowledge to another)."""
    return [f"$share/{SHARE_GROUP}/{topic_filter}" for topic_filter in SUBSCRIPTIONS]


def replica_client_id(base: str, replica: str, host: str, pid: int) -> str:
    """The app's MQTT client id: ``base`` for a single app process (``replica`` empty),
    ``<base>-<replica>`` for a named replica, ``<base>-<host>-<pid>`` for ``replica=auto``."""
    if not replica:
        return base
    return f"{base}-{host}-{pid}" if replica == "auto" else f"{base}-{replica}"


class IngestService:
    """Dispatches broker messages to the right handler."""

    def __init__(
        self,
        registry: DeviceRegistry,
        data: DataService,
        services: DeviceServices,
        ota: Delivery | None = None,
        clock: Callable[[], float] = time.monotonic,
        claims: ClaimWindows | None = None,
    ) -> None:
        self.registry = registry
        self._clock = clock  # how long found routes are reused (tests move it by hand)
        self.ota = ota
        self.claims = claims
        self.data = data
        self.services = services
        self.uplinks = Uplinks(services)
        self.handlers = self._handlers()
        self.processed = 0
        self._routes: dict[str, tuple[int, DatastreamSpec]] = {}  # topic -> (device id, datastream)
        self._routes_until = 0.0
        self._routes_generation = -1

    async def handle(self, messages: Sequence[Message]) -> None:
        """Process messages in order; never raises.

        Plain values (``d/<id>/ds/<name>`` of a device and datastream the ingest knows, most
        messages) are gathered and stored together, one batch for each run of them
        (:meth:`DataService.record`); any other message first has the values before it stored,
        then goes to its handler (:attr:`handlers`).
        """
        routes = self._fresh_routes()
        route_of = self._route
        values: list[Incoming] = []
        for message in messages:
            topic = message.topic
            route = routes[topic] if topic in routes else route_of(topic)
            if route is not None:
                values.append((route, message.payload, None))
                continue
            if values:
                await self._values(values)
                values = []
            try:
                await self._dispatch(message)
            except Exception:
                log.exception("ingest failed for %s", topic)
            self.processed += 1
            routes = self._fresh_routes()  # it may have waited: the registry may have changed meanwhile
        if values:
            await self._values(values)

    async def _values(self, values: list[Incoming]) -> None:
        """A run of plain values: stored; the devices told why for those refused."""
        try:
            await self._store(values)
        except Exception:
            log.exception("ingest failed for %d values", len(values))
        # One time for the run: last-seen is written coalesced every few seconds anyway.
        self.services.lifecycle.seen_all({device_id for (device_id, _), _, _ in values}, datetime.now(UTC))
        self.processed += len(values)

    async def _store(self, values: list[Incoming]) -> None:
        for index, exc in await self.data.record(values):
            (device_id, spec), _, _ = values[index]
            self.data.diag(device_id, f"ds/{spec.name[:MAX_DIAG_NAME]}: {exc.message}")

    def _fresh_routes(self) -> dict[str, tuple[int, DatastreamSpec]]:
        """The routes :meth:`_route` found, while they may still be used: for at most
        :data:`ROUTES_SECONDS`, and until the device registry forgets an entry."""
        now = self._clock()
        if now >= self._routes_until or self._routes_generation != self.registry.generation:
            self._routes.clear()
            self._routes_until = now + ROUTES_SECONDS
            self._routes_generation = self.registry.generation
        return self._routes

    def _route(self, topic: str) -> tuple[int, DatastreamSpec] | None:
        """The device and datastream of a ``d/<id>/ds/<name>`` topic of a device in the
        registry's cache (remembered); else None (the message goes to its handler)."""
        parts = topic.split("/", 2)
        if len(parts) != 3 or parts[0] != "d" or not is_digits(parts[1]):
            return None
        found = match_uplink(parts[2])
        if found is None or found.uplink is not Uplink.VALUE:
            return None
        device = self.registry.cached(int(parts[1]))
        if device is None:
            return None
        spec = device.by_name.get(found.names[0])
        if spec is None:
            return None
        route = self._routes[topic] = (device.id, spec)
        return route

    def _handlers(self) -> dict[Uplink, UplinkHandler]:
        """The handler of each uplink: the ingest's whole dispatch."""
        up = self.uplinks
        return {
            Uplink.INFO_MCU: self._info_mcu,
            Uplink.VALUE: self._value,
            Uplink.BATCH_DS: up.batch_ds,
            Uplink.TIMESTAMPED_BATCH: up.timestamped,
            Uplink.ERASE: up.erase,
            Uplink.PROPERTY: up.prop,
            Uplink.PROPERTY_ERASE: up.prop_erase,
            Uplink.EVENT: up.event,
            Uplink.META: up.meta,
            Uplink.GET_DS: self._get_ds,
            Uplink.GET_DS_ALL: self._get_ds_all,
            Uplink.GET_META: up.get_meta,
            Uplink.GET_UTC: up.get_utc,
            Uplink.GET_LOC: up.get_loc,
            Uplink.OTA_STATUS: self._ota_status,
            Uplink.CLAIM_OPEN: self._claim_open,
        }

    async def _dispatch(self, msg: Message) -> None:
        parts = msg.topic.split("/", 2)
        if parts[0] == "sys" and len(parts) == 3 and is_digits(parts[2]):
            await self._system(parts[1], int(parts[2]), msg.payload)
            return
        if parts[0] != "d" or len(parts) < 3 or not is_digits(parts[1]):
            return
        device = await self.registry.get(int(parts[1]))
        if device is None:
            return
        self.services.lifecycle.seen(device.id)
        found = match_uplink(parts[2])
        if found is None:
            self._unsupported(device, parts[2])
        else:
            await self.handlers[found.uplink](device, found.names, msg.payload)

    def _unsupported(self, device: DeviceInfo, topic: str) -> None:
        """A topic this server version does not handle (yet): say so."""
        self.data.diag(device.id, f"{topic[:MAX_DIAG_NAME]}: not supported by this server yet")

    async def _system(self, kind: str, device_id: int, payload: bytes) -> None:
        """``sys/presence|vitals|ping/<id>`` from the broker."""
        lifecycle = self.services.lifecycle
        try:
            doc = json.loads(payload)
            if not isinstance(doc, dict):
                raise TypeError("not a JSON object")
            if kind == "presence":
                device = await self.registry.get(device_id)
                await lifecycle.presence(device_id, doc, device.offline_ignore_seconds if device else 0)
            elif kind == "vitals":
                await lifecycle.vitals(device_id, doc)
            elif kind == "ping":
                await lifecycle.ping(device_id, doc)
        except (ValueError, KeyError, TypeError, OverflowError, OSError) as exc:
            log.warning("malformed sys/%s for device %s: %s", kind, device_id, exc)

    async def _value(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``ds/<datastream>``: a value (of a device not in the registry's cache, or of no
        datastream; the others are stored in runs, see :meth:`handle`)."""
        try:
            spec = self.data.spec_by_name(device, names[0])
        except ValidationError as exc:
            self.data.diag(device.id, f"ds/{names[0][:MAX_DIAG_NAME]}: {exc.message}")
            return
        await self._store([((device.id, spec), payload, None)])

    async def _info_mcu(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``info/mcu``: firmware and board; Blynk.Air learns of the installed version."""
        try:
            info: Any = json.loads(payload)
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self.data.diag(device.id, f"info/mcu: expected a JSON object ({exc})")
            return
        await self.services.lifecycle.info_mcu(device.id, info)
        if self.ota is not None:  # Blynk.Air: success, mismatch, rollback or a retry
            await self.ota.info_mcu(device.id, info)

    async def _ota_status(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``ota/status``: Blynk.Air progress."""
        if self.ota is None:
            self._unsupported(device, Uplink.OTA_STATUS.pattern)
            return
        problem = await self.ota.status(device.id, payload)
        if problem is not None:
            self.data.diag(device.id, problem)

    async def _claim_open(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``claim/open``: a static-token device opens a headless claim window (Blynk.Inject)."""
        if self.claims is None:
            self._unsupported(device, Uplink.CLAIM_OPEN.pattern)
            return
        problem = await self.claims.open(device.id, payload)
        if problem is not None:
            self.data.diag(device.id, problem)

    async def _get_ds(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``get/ds``: the named datastreams' values on ``downlink/ds/<datastream>``."""
        for name in (n for n in payload.decode("utf-8", "replace").split(",") if n):
            spec = device.by_name.get(name)
            if spec is None:
                self.data.diag(device.id, f"get/ds: no datastream named {name[:MAX_DIAG_NAME]!r}")
                continue
            await self._send_current(device, spec.name, spec.pin)

    async def _get_ds_all(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``get/ds/all``: the values of the datastreams with "Sync with latest server value"."""
        for spec in device.by_name.values():
            if spec.sync:
                await self._send_current(device, spec.name, spec.pin)

    async def _send_current(self, device: DeviceInfo, name: str, pin: int) -> None:
        value = await self.data.current(device, device.by_pin[pin])
        if value is not None:
            self.data.publisher.publish(downlink_topic(device.id, Downlink.VALUE.topic(name)), value.encode())
