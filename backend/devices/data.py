"""Datastream values of devices: checking, storing, reading back and sending them.

Every stored value goes through :class:`DataService`, whoever sent it: a device over MQTT (the
ingest), Blynk's HTTP device API, the console or the platform API. A value is checked against
its datastream (type, min/max clamp, size), becomes the latest value, is shown to the console
pages watching the device (the live feed) and gets the history row that Blynk's "Save Raw Data"
rule gives it (:meth:`DataService.record`). A value written through the HTTP device API, the console
or the platform API (:meth:`DataService.write_from_server`) is also published to the device on
``downlink/ds/<name>`` and, when a user or API client set it, written to the device's actions
log. The service also reads the current value (or the datastream's default), erases a latest
value, and tells a device what was wrong on ``downlink/diag``. (The one exception is the HTTP
device API's import of past points, ``backend.device_api.batch``, which stores a whole request
in one transaction of its own, with the same history rows, :func:`history_row`.)

Values are stored by one route, :meth:`DataService.record`, in batches (a single value is a
batch of one): the ingest's runs of plain values, a ``batch_ds`` or a timestamped batch, and a
server-side write. Each rule of the path is written there once.

A batch's latest values are written by the history writer in the transaction that commits its
rows (``backend.history.writer``), so whatever is acknowledged after that commit (a PUBACK, an
HTTP 200) has its latest value stored too; a value that is not history still gets a marker row
(:func:`marker_row`) to carry it there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from backend.devices.actions import ActionLog, Actor
from backend.devices.latest import LatestValues
from backend.devices.live import LiveFeed
from backend.devices.registry import DeviceInfo
from backend.devices.signals import ALL_PINS, DeviceSignals, StoredRow, StoredValues
from backend.errors import ValidationError
from backend.history.writer import HistoryWriter, Row
from backend.templates.values import DatastreamSpec, Value, checked_value, parse_value, shown_text
from broker.topics import Downlink


class Publisher(Protocol):
    """Something that can publish an MQTT message to the broker."""

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> object: ...


def downlink_topic(device_id: int, relative: str) -> str:
    """The broker topic a device sees as ``relative`` (e.g. ``downlink/ds/Power``)."""
    return f"d/{device_id}/{relative}"


Destination = tuple[int, DatastreamSpec]
"""Where a value is stored: a device's id and one of its datastreams."""

Incoming = tuple[Destination, str | bytes | Value, datetime | None]
"""A value to record: where it goes, its text or MQTT payload (or a :class:`Value` already
checked against that datastream, :meth:`DataService.check`), and its time (None: now)."""


STEPS = tuple(timedelta(microseconds=i) for i in range(1024))
"""The time of the value at index ``i`` of a batch stored "now": the batch's time plus ``i``
microseconds (reading the clock costs several times as much as adding these)."""
ONE_US = STEPS[1]


def history_row(
    device_id: int, spec: DatastreamSpec, at: datetime, shown: str | float, number: float | None
) -> Row | None:
    """The history row of a checked value (``shown`` and ``number`` as
    :func:`~backend.templates.values.checked_value` gives them), by Blynk's "Save Raw Data"
    setting of its datastream: with ``save_raw`` the point is kept as it is, and numbers also
    go into the per-minute and per-hour rollups; without it a number is kept only in the
    rollups (one averaged point per minute, as on Blynk), and strings and locations, which
    have no number and cannot be averaged, are not history at all (None: only the latest
    value keeps them). The live path (:meth:`DataService.record`) and the HTTP device API's
    import of timestamped points (``backend.device_api.batch``) both make their rows here."""
    if number is not None:
        return (device_id, spec.pin, at, number, None, spec.save_raw)
    if spec.save_raw:
        return (device_id, spec.pin, at, None, shown_text(shown), True)
    return None


def marker_row(device_id: int, pin: int, at: datetime) -> Row:
    """The row of a value that is not history (:func:`history_row` gave None): it writes
    nothing, but its commit is the one that stores the value's latest value and that its
    acknowledgement waits for (``backend.history.writer``)."""
    return (device_id, pin, at, None, None, False)


def value_event(pin: int, text: str, at: datetime, origin: str) -> dict[str, object]:
    """The live feed's event for a stored value (what open console pages receive)."""
    return {"type": "value", "pin": pin, "value": text, "ts": int(at.timestamp() * 1000), "origin": origin}


class UnknownDatastreamError(ValidationError):
    """No datastream of that name or pin in the device's template."""


class DataService:
    """Checks and stores datastream values; sends server-side writes to devices."""

    def __init__(
        self,
        latest: LatestValues,
        history: HistoryWriter,
        publisher: Publisher,
        max_string_bytes: int = 1024,
        live: LiveFeed | None = None,
        actions: ActionLog | None = None,
        signals: DeviceSignals | None = None,
    ) -> None:
        self.signals = signals or DeviceSignals()
        self.latest = latest
        self.actions = actions
        self.history = history
        self.publisher = publisher
        self.max_string_bytes = max_string_bytes
        self.live = live or LiveFeed()
        self._last_at = datetime.min.replace(tzinfo=UTC)  # the latest time given a value stored now

    def spec_by_name(self, device: DeviceInfo, name: str) -> DatastreamSpec:
        """The datastream called ``name``; raises UnknownDatastreamError."""
        spec = device.by_name.get(name)
        if spec is None:
            raise UnknownDatastreamError(f"no datastream named {name!r} in template {device.template_name!r}")
        return spec

    def check(self, spec: DatastreamSpec, raw: str) -> Value:
        """Check a value without storing it; raises ValidationError."""
        return parse_value(spec, raw, max_string_bytes=self.max_string_bytes)

    async def record(self, values: Sequence[Incoming], *, origin: str = "device") -> list[tuple[int, ValidationError]]:
        """Check and store values, in order; the ones refused, by their index in ``values``,
        with the reason (the others are stored all the same).

        For each value: check and clamp (:func:`~backend.templates.values.checked_value`),
        the latest value (an older point never replaces a newer one), the live feed (open
        consoles see it at once) and the history row that Blynk's "Save Raw Data" setting of
        its datastream gives it (:func:`history_row`); values of datastreams that automations
        or webhooks watch go to :class:`~backend.devices.signals.DeviceSignals` too. A
        :class:`Value` is not checked again. Waits only while the history queue is full. The
        latest values are stored with the history rows, in their transaction (the module's
        docstring); until then they are read from memory.

        A value without a time (``at`` None) is stored at the time the batch is taken plus its
        index in microseconds (:data:`STEPS`): times given this way only grow, within a batch
        and from one batch to the next, even if the clock steps back.
        """
        newest: dict[tuple[int, int], tuple[str | float, datetime]] = {}
        rows: list[Row] = []
        refused: list[tuple[int, ValidationError]] = []
        live = self.live
        watched = live.watched
        signalled = self.signals.pins  # the pins automations or webhooks react to, by template
        told: list[StoredRow] = []  # StoredValue items are made only if a listener reads them
        max_bytes = self.max_string_bytes
        now, utc, checked = datetime.now, UTC, Value
        make_row, keep_row, newest_of, marker = history_row, rows.append, newest.get, marker_row  # bound once
        stamp = now(utc)
        if stamp <= self._last_at:
            stamp = self._last_at + ONE_US
        steps, count = STEPS, len(values)
        self._last_at = stamp + (steps[count] if count < len(steps) else timedelta(microseconds=count))
        for index, ((device_id, spec), raw, at) in enumerate(values):
            shown: str | float
            if isinstance(raw, checked):  # checked by the caller (a server-side write)
                shown, number = raw.text, raw.number
            else:
                try:
                    shown, number = checked_value(spec, raw, max_bytes)  # a Double's text is made when it is read
                except ValidationError as exc:
                    refused.append((index, exc))
                    continue
            pin = spec.pin
            if at is None:  # now: times only grow
                at = stamp + steps[index] if index < 1024 else stamp + timedelta(microseconds=index)
                newest[device_id, pin] = (shown, at)
            elif (current := newest_of((device_id, pin))) is None or current[1] <= at:
                newest[device_id, pin] = (shown, at)
            row = make_row(device_id, spec, at, shown, number)
            keep_row(row if row is not None else marker(device_id, pin, at))
            if device_id in watched:
                live.publish(device_id, value_event(pin, shown_text(shown), at, origin))
            if (
                signalled
                and (pins := signalled.get(spec.template_id)) is not None
                and (pin in pins or ALL_PINS in pins)
            ):
                told.append((device_id, spec.template_id, pin, spec.name, shown, number, at))
        self.latest.remember_many(newest)
        if told:
            self.signals.values(StoredValues(told, origin))
        await self.history.add_many(rows, newest)
        return refused

    async def erase(self, device: DeviceInfo, spec: DatastreamSpec) -> None:
        """Clear the stored latest value (history is kept), once the values on their way to
        the database are stored (else the value being written would come back)."""
        await self.history.settled_now()
        await self.latest.erase(device.id, spec.pin)
        self.live.publish(device.id, {"type": "value", "pin": spec.pin, "value": None, "origin": "device"})

    async def write_from_server(
        self, device: DeviceInfo, spec: DatastreamSpec, raw: str, actor: Actor | None = None
    ) -> Value:
        """A value set by the platform: store it and send it to the device. With ``actor`` (a user
        of the console or a platform API client) it also goes into the device's actions log; the
        HTTP device API's writes (made with the device's own token) pass none."""
        value = self.check(spec, raw)
        await self.record([((device.id, spec), value, None)], origin="server")  # checked: none refused
        if actor is not None:
            if self.actions is None:
                raise RuntimeError("this DataService was built without an actions log")
            await self.actions.add(device.id, spec.pin, value.text, actor)
        self.publisher.publish(downlink_topic(device.id, Downlink.VALUE.topic(spec.name)), value.text.encode(), qos=0)
        return value

    async def current(self, device: DeviceInfo, spec: DatastreamSpec) -> str | None:
        """The latest value of a datastream, or its default, or None."""
        latest = await self.latest.get(device.id, spec.pin)
        if latest is not None:
            return latest.value
        return spec.default_value

    def diag(self, device_id: int, text: str) -> None:
        """Tell a device what went wrong with something it sent (``downlink/diag``)."""
        self.publisher.publish(downlink_topic(device_id, Downlink.DIAG.topic()), text.encode()[:512], qos=0)
