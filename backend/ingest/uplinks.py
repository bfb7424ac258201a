"""Handlers of the device uplinks beyond plain values: ``batch_ds``, timestamped batches,
erase, widget properties, events, metadata, and the ``get/...`` requests for metadata, time
and location. Each is an :data:`UplinkHandler`, reports what went wrong on ``downlink/diag``
and never raises :class:`ValidationError` to the dispatcher. Values, timestamped or not, are
stored through :meth:`DataService.record`, so their history follows the datastream's "Save Raw
Data".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from backend.devices.context import DeviceServices
from backend.devices.data import downlink_topic
from backend.devices.place import device_zone, lat_lon, lat_lon_text
from backend.devices.registry import DeviceInfo
from backend.devices.timezones import utc_payload
from backend.errors import ValidationError
from backend.ingest.payloads import parse_batch_ds, parse_timestamped
from broker.topics import Downlink

MAX_DIAG_NAME = 64

UplinkHandler = Callable[[DeviceInfo, tuple[str, ...], bytes], Awaitable[None]]
"""Handles one uplink of a device: its ``<...>`` names (in the order of the topic's
:class:`broker.topics.Uplink` pattern) and its payload."""


class Uplinks:
    """The handlers; ``topic`` arguments are device-relative, for diag messages."""

    def __init__(self, services: DeviceServices) -> None:
        self.s = services

    def diag(self, device: DeviceInfo, topic: str, text: str) -> None:
        """Report a problem with what the device sent on ``topic``."""
        self.s.data.diag(device.id, f"{topic[: MAX_DIAG_NAME + 40]}: {text}")

    async def batch_ds(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``batch_ds``: store every good entry, report each bad one."""
        try:
            entries = parse_batch_ds(payload, device.by_name)
        except ValidationError as exc:
            self.diag(device, "batch_ds", exc.message)
            return
        for message in entries.errors:
            self.diag(device, "batch_ds", message)
        at = datetime.now(UTC)
        refused = await self.s.data.record([((device.id, spec), text, at) for spec, text in entries.good])
        for _, problem in refused:
            self.diag(device, "batch_ds", problem.message)

    async def timestamped(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``ds/<name>/timestamped_batch``: history at the given times; latest only moves forward."""
        name = names[0]
        topic = f"ds/{name[:MAX_DIAG_NAME]}/timestamped_batch"
        try:
            spec = self.s.data.spec_by_name(device, name)
            batch = parse_timestamped(payload, spec, datetime.now(UTC), self.s.timestamped_max_age)
        except ValidationError as exc:
            self.diag(device, topic, exc.message)
            return
        total = len(batch.points) + batch.out_of_window + batch.bad
        refused = await self.s.data.record([((device.id, spec), text, at) for at, text in batch.points])
        if refused:
            batch.bad += len(refused)
            batch.first_error = batch.first_error or refused[0][1].message
        if batch.out_of_window:
            days = self.s.timestamped_max_age.days
            self.diag(
                device,
                topic,
                f"{batch.out_of_window} of {total} points refused: timestamp more than {days} days from now",
            )
        if batch.bad:
            self.diag(device, topic, f"{batch.bad} of {total} points refused: {batch.first_error}")

    async def erase(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``ds/<name>/erase``: clear the stored value."""
        name = names[0]
        try:
            await self.s.data.erase(device, self.s.data.spec_by_name(device, name))
        except ValidationError as exc:
            self.diag(device, f"ds/{name[:MAX_DIAG_NAME]}/erase", exc.message)

    async def prop(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``ds/<name>/prop/<property>``: set a widget property."""
        await self._prop(device, names[0], names[1], payload, erase=False)

    async def prop_erase(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``ds/<name>/prop/<property>/erase``: clear a widget property."""
        await self._prop(device, names[0], names[1], payload, erase=True)

    async def _prop(self, device: DeviceInfo, name: str, prop: str, payload: bytes, erase: bool) -> None:
        topic = f"ds/{name[:MAX_DIAG_NAME]}/prop/{prop[:MAX_DIAG_NAME]}" + ("/erase" if erase else "")
        try:
            spec = self.s.data.spec_by_name(device, name)
            if erase:
                await self.s.properties.erase(device.id, spec.pin, prop)
            else:
                await self.s.properties.set(device.id, spec.pin, prop, _text(payload))
        except ValidationError as exc:
            self.diag(device, topic, exc.message)

    async def event(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``event/<code>``: a timeline entry; empty payload = the definition's description."""
        code = names[0]
        try:
            await self.s.timeline.log_event(device, code, _text(payload))
        except ValidationError as exc:
            self.diag(device, f"event/{code[:MAX_DIAG_NAME]}", exc.message)

    async def meta(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``meta/<name>``: a device-writable metadata value."""
        name = names[0]
        try:
            await self.s.meta.set_from_device(device, name, _text(payload))
        except ValidationError as exc:
            self.diag(device, f"meta/{name[:MAX_DIAG_NAME]}", exc.message)

    async def get_meta(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``get/meta``: comma-separated names, each answered on ``downlink/meta/<name>``."""
        for name in (n for n in payload.decode("utf-8", "replace").split(",") if n):
            try:
                spec = self.s.meta.field(device, name)
            except ValidationError as exc:
                self.diag(device, "get/meta", exc.message)
                continue
            value = await self.s.meta.value(device, spec)
            self.s.data.publisher.publish(downlink_topic(device.id, Downlink.META.topic(spec.name)), value.encode())

    async def get_utc(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``get/utc/all/json``: the time document on ``downlink/utc/all/json``."""
        zone = await device_zone(device, self.s.data, self.s.meta)
        self.s.data.publisher.publish(downlink_topic(device.id, Downlink.UTC.topic()), utc_payload(zone))

    async def get_loc(self, device: DeviceInfo, names: tuple[str, ...], payload: bytes) -> None:
        """``get/loc/all``: ``lat,lon`` on ``downlink/loc/all``."""
        point = await lat_lon(device, self.s.data, self.s.meta)
        if point is None:
            self.diag(
                device,
                "get/loc/all",
                "the device has no location (no Location datastream value and no Location metadata)",
            )
            return
        topic = downlink_topic(device.id, Downlink.LOCATION.topic())
        self.s.data.publisher.publish(topic, lat_lon_text(point).encode())


def _text(payload: bytes) -> str:
    """A payload as text; raises ValidationError if it is not UTF-8."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("value is not UTF-8 text") from None
