"""What happens to devices, told to whoever listens inside one app process.

Automations (device state, online/offline, events), webhooks (datastream updates, first
connection, activation, new users) and event notifications react to what devices do. The
paths that store those things call :class:`DeviceSignals` right after they stored them;
listeners are plain synchronous callables registered at start-up. A listener must be cheap
and must never block: it looks at what it was given and, when it has work, puts it on its own
queue (an automation run, a webhook delivery). A listener that raises is logged and the
others are still called; the path that stored the value never sees the error.

Values are the hot path (thousands a second): :meth:`DeviceSignals.values` is called by
``DataService.record`` only with values of watched datastreams. Listeners say which ones they
want with :meth:`watch` (one datastream of a template) or :meth:`watch_all` (every datastream
of a template); a value of a datastream nobody watches costs one dict lookup by its template
(:attr:`DeviceSignals.pins`), and none at all while nothing is watched.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, overload

from backend.templates.values import shown_text

log = logging.getLogger(__name__)


class StoredValue(NamedTuple):
    """A value ``DataService.record`` stored (checked and clamped), as :class:`StoredValues`
    gives it to a listener that reads it."""

    device_id: int
    template_id: int
    pin: int
    name: str
    """The datastream's name."""
    text: str
    """The value as stored and shown."""
    number: float | None
    """The value as a number (None for strings and locations)."""
    at: datetime
    origin: str
    """``device`` or ``server`` (the console, an API, an automation)."""


StoredRow = tuple[int, int, int, str, str | float, float | None, datetime]
"""A stored value as ``DataService.record`` tells it: device, template, pin, datastream name,
the value as stored (a Double's number is made into text only when read), number, time."""


class StoredValues(Sequence[StoredValue]):
    """A batch of stored values given to the value listeners: :class:`StoredValue` items made only
    when read. The ingest tells every value of a watched datastream, so the batch holds plain
    tuples (:data:`StoredRow`); a listener that looks at every value of a busy datastream (the
    automation engine's device-state rules) may read :attr:`rows` and skip making the items."""

    __slots__ = ("origin", "rows")

    def __init__(self, rows: list[StoredRow], origin: str) -> None:
        self.rows = rows
        self.origin = origin
        """``device`` or ``server``, for every value of the batch."""

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> StoredValue: ...

    @overload
    def __getitem__(self, index: slice) -> list[StoredValue]: ...

    def __getitem__(self, index: int | slice) -> StoredValue | list[StoredValue]:
        if isinstance(index, slice):
            return [self._item(row) for row in self.rows[index]]
        return self._item(self.rows[index])

    def __iter__(self) -> Iterator[StoredValue]:
        return map(self._item, self.rows)

    def _item(self, row: StoredRow) -> StoredValue:
        device_id, template_id, pin, name, shown, number, at = row
        return StoredValue(device_id, template_id, pin, name, shown_text(shown), number, at, self.origin)


@dataclass(frozen=True, slots=True)
class DeviceEventSignal:
    """A device event logged on the timeline."""

    device_id: int
    org_id: int
    template_id: int
    device_name: str
    code: str
    name: str
    """The event definition's name."""
    type: str
    """``INFO``, ``WARNING``, ``CRITICAL`` or ``CONTENT``."""
    description: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PresenceSignal:
    """A device went online or offline (a transition, never a repeat)."""

    device_id: int
    online: bool
    at: datetime


ValuesListener = Callable[[Sequence[StoredValue]], None]
EventListener = Callable[[DeviceEventSignal], None]
PresenceListener = Callable[[PresenceSignal], None]
DeviceListener = Callable[[int], None]
UserListener = Callable[[int, int], None]

ALL_PINS = -1
"""The pin :meth:`DeviceSignals.watch_all` watches: every datastream of a template."""


class DeviceSignals:
    """The listeners of one app process, and which datastreams they watch."""

    def __init__(self) -> None:
        self._values: list[ValuesListener] = []
        self._events: list[EventListener] = []
        self._presence: list[PresenceListener] = []
        self._first_connection: list[DeviceListener] = []
        self._activated: list[DeviceListener] = []
        self._user_added: list[UserListener] = []
        self._watches: Counter[tuple[int, int]] = Counter()
        self.watched: set[tuple[int, int]] = set()
        """``(template_id, pin)`` pairs someone watches; ``(template_id, ALL_PINS)`` for a whole
        template. Read by ``DataService.record`` on every value: keep it a plain set."""
        self.whole_templates: set[int] = set()
        """Templates watched with :meth:`watch_all`."""
        self.pins: dict[int, frozenset[int]] = {}
        """The watched pins of each template (with ``ALL_PINS`` for a whole template), the
        same as :attr:`watched`, keyed so the value path allocates nothing to look one up."""

    # -- which values are wanted ----------------------------------------------------------------
    def watch(self, template_id: int, pin: int) -> None:
        """Be given the values of datastream ``pin`` of every device of ``template_id``.
        Watches are counted: each :meth:`watch` needs its own :meth:`unwatch`."""
        key = (template_id, pin)
        self._watches[key] += 1
        self.watched.add(key)
        self.pins[template_id] = self.pins.get(template_id, frozenset()) | {pin}
        if pin == ALL_PINS:
            self.whole_templates.add(template_id)

    def watch_all(self, template_id: int) -> None:
        """Be given the values of every datastream of every device of ``template_id``."""
        self.watch(template_id, ALL_PINS)

    def unwatch(self, template_id: int, pin: int) -> None:
        """Undo one :meth:`watch` (or :meth:`watch_all` with ``pin=ALL_PINS``)."""
        key = (template_id, pin)
        count = self._watches[key] - 1
        if count > 0:
            self._watches[key] = count
            return
        self._watches.pop(key, None)
        self.watched.discard(key)
        left = self.pins.get(template_id, frozenset()) - {pin}
        if left:
            self.pins[template_id] = left
        else:
            self.pins.pop(template_id, None)
        if pin == ALL_PINS:
            self.whole_templates.discard(template_id)

    def wants(self, template_id: int, pin: int) -> bool:
        """Whether a value of this datastream is to be given to the value listeners."""
        return (template_id, pin) in self.watched or template_id in self.whole_templates

    # -- listeners ----------------------------------------------------------------------------
    def on_values(self, listener: ValuesListener) -> None:
        """Call ``listener`` with each batch of stored values of watched datastreams."""
        self._values.append(listener)

    def on_event(self, listener: EventListener) -> None:
        """Call ``listener`` with each device event logged."""
        self._events.append(listener)

    def on_presence(self, listener: PresenceListener) -> None:
        """Call ``listener`` when a device goes online or offline."""
        self._presence.append(listener)

    def on_first_connection(self, listener: DeviceListener) -> None:
        """Call ``listener`` with a device's id the first time it ever connects."""
        self._first_connection.append(listener)

    def on_activated(self, listener: DeviceListener) -> None:
        """Call ``listener`` with a device's id when it is activated (provisioned or claimed)."""
        self._activated.append(listener)

    def on_user_added(self, listener: UserListener) -> None:
        """Call ``listener`` with ``(org_id, user_id)`` when a user joins an organization."""
        self._user_added.append(listener)

    # -- telling ------------------------------------------------------------------------------
    def values(self, stored: Sequence[StoredValue]) -> None:
        """Stored values of watched datastreams (called by ``DataService.record``)."""
        if stored:
            _tell(self._values, stored)

    def event(self, signal: DeviceEventSignal) -> None:
        """A device event was logged."""
        _tell(self._events, signal)

    def presence(self, signal: PresenceSignal) -> None:
        """A device went online or offline."""
        _tell(self._presence, signal)

    def first_connection(self, device_id: int) -> None:
        """A device connected for the first time."""
        _tell(self._first_connection, device_id)

    def activated(self, device_id: int) -> None:
        """A device was activated."""
        _tell(self._activated, device_id)

    def user_added(self, org_id: int, user_id: int) -> None:
        """A user joined an organization."""
        _tell(self._user_added, org_id, user_id)


def _tell(listeners: Sequence[Callable[..., None]], *args: object) -> None:
    for listener in listeners:
        try:
            listener(*args)
        except Exception:
            log.exception("a device signal listener failed")
