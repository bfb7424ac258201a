"""Event notifications: Blynk's notification settings of template events, applied when a
device logs an event.

:class:`EventNotifications` listens to :meth:`DeviceSignals.on_event`; the listener only puts
the event on a bounded queue (it runs inside the path that logged the event), and one worker
task per app process takes them in order. For each event whose definition has settings
(``event_def.notify``, :class:`~backend.templates.schemas.EventNotify`):

1. **Every Nth, limit period**: ``event_notify_state`` counts the device's events of that
   code; a notification goes out when the count is a multiple of ``every_nth`` and the last
   one went out at least ``limit_period_s`` before (claimed in one UPDATE, so two app
   processes never both send).
2. **Recipients**: the device's owner and the Admins of the device's organization (as
   chosen), the e-mail addresses in the named metadata fields of the device, and fixed
   addresses. In-app notifications go to those who are active users of the device's
   organization; e-mail to every address. Each user's preferences are honoured by the
   :class:`~backend.notifications.service.Notifier`, and so is the hourly e-mail limit (a
   notification past it is logged and dropped).
3. **Text**: the title ``{DEVICE_NAME}: {EVENT_NAME}`` and the event's description, with
   Blynk's placeholders (``backend.placeholders``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backend.devices.signals import DeviceEventSignal, DeviceSignals
from backend.errors import MailError, NotificationLimitError
from backend.notifications.service import Notifier
from backend.placeholders import render
from backend.tasks import cancel
from backend.templates.schemas import EventNotify

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
"""Events waiting for the worker; more are dropped (and logged) so the ingest never waits."""
TITLE = "{DEVICE_NAME}: {EVENT_NAME}"
EMAIL_SUBJECT = "{EVENT_NAME} on {DEVICE_NAME}"
EMAIL_BODY = """{EVENT_NAME} ({EVENT_TYPE}) on {DEVICE_NAME}, {TIMESTAMP}

{EVENT_DESCRIPTION}

Organization: {ORG_NAME}
Template: {TEMPLATE_NAME}
"""
_ADDRESS = re.compile(r"[^@\s,;<>\"'()\[\]{}:]+@[^@\s,;<>\"'()\[\]{}:]+\.[A-Za-z]{2,}")

_SETTINGS_SQL = """SELECT e.id, e.notify, t.name, o.name FROM event_def e
JOIN template t ON t.id = e.template_id JOIN organization o ON o.id = %(org)s
WHERE e.template_id = %(template)s AND e.code = %(code)s"""
_COUNT_SQL = """INSERT INTO event_notify_state AS s (device_id, code, seen) VALUES (%s, %s, 1)
ON CONFLICT (device_id, code) DO UPDATE SET seen = s.seen + 1 RETURNING seen"""
_CLAIM_SQL = """UPDATE event_notify_state SET last_sent_at = %(at)s
WHERE device_id = %(device)s AND code = %(code)s AND (last_sent_at IS NULL OR last_sent_at <= %(since)s)
RETURNING device_id"""
_META_SQL = "SELECT value FROM device_meta WHERE device_id = %s AND name = ANY(%s)"
_USERS_SQL = """SELECT u.id, u.email FROM app_user u JOIN role r ON r.id = u.role_id
WHERE u.org_id = %(org)s AND u.status = 'active' AND (
    (%(owner)s AND u.id = (SELECT owner_id FROM device WHERE id = %(device)s))
    OR (%(admins)s AND '*' = ANY(r.permissions))
    OR lower(u.email) = ANY(%(addresses)s))
ORDER BY u.id"""


@dataclass(frozen=True, slots=True)
class Recipients:
    """Who an event notification goes to: users (in-app) and addresses (e-mail)."""

    user_ids: list[int]
    addresses: list[str]


def addresses_in(text: str) -> list[str]:
    """The e-mail addresses written in a metadata value (a Contact field holds a name, a phone
    number and an address; an Email field one address)."""
    return _ADDRESS.findall(text)


def due(seen: int, every_nth: int) -> bool:
    """Whether the ``seen``-th event (counted from 1) is one to notify of."""
    return seen % every_nth == 0


class EventNotifications:
    """Sends the notifications of logged device events (see the module's docstring)."""

    def __init__(self, pool: AsyncConnectionPool, notifier: Notifier) -> None:
        self.pool = pool
        self.notifier = notifier
        self._queue: asyncio.Queue[DeviceEventSignal] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def listen(self, signals: DeviceSignals) -> None:
        """Hear every event the process logs."""
        signals.on_event(self.offer)

    def offer(self, signal: DeviceEventSignal) -> None:
        """Queue an event (a :class:`DeviceSignals` listener: never waits)."""
        try:
            self._queue.put_nowait(signal)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("event notifications: queue full, event %s of device %s dropped", signal.code, signal.device_id)

    def start(self) -> None:
        """Start the worker."""
        self._task = asyncio.create_task(self._run(), name="event-notifications")

    async def stop(self) -> None:
        """Stop the worker (events still queued are not notified)."""
        task, self._task = self._task, None
        await cancel(task)

    async def idle(self) -> None:
        """Wait until every queued event was handled (for tests and shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            signal = await self._queue.get()
            try:
                await self.handle(signal)
            except Exception:
                log.exception("event notification of %s on device %s failed", signal.code, signal.device_id)
            finally:
                self._queue.task_done()

    async def handle(self, signal: DeviceEventSignal) -> None:
        """Notify of one event as its definition's settings say."""
        async with self.pool.connection() as conn:
            args = {"org": signal.org_id, "template": signal.template_id, "code": signal.code}
            row = await (await conn.execute(_SETTINGS_SQL, args)).fetchone()
            if row is None or row[1] is None:
                return
            event_id, raw, template_name, org_name = row
            settings = msgspec.convert(raw, EventNotify)
            if not (settings.email or settings.in_app) or not await self._claim(conn, signal, settings):
                return
            recipients = await self.recipients(conn, signal, settings)
        values = _values(signal, template_name, org_name)
        title = render(TITLE, values)
        if settings.in_app and recipients.user_ids:
            await self.notifier.in_app(
                signal.org_id,
                recipients.user_ids,
                title,
                signal.description,
                device_id=signal.device_id,
                source="event",
                source_id=event_id,
                level=signal.type.lower(),
            )
        if settings.email and recipients.addresses:
            try:
                await self.notifier.email(
                    signal.org_id, recipients.addresses, render(EMAIL_SUBJECT, values), render(EMAIL_BODY, values)
                )
            except (NotificationLimitError, MailError) as exc:
                log.warning("event %s of device %s: e-mail not sent: %s", signal.code, signal.device_id, exc.message)

    async def _claim(self, conn: AsyncConnection[Any], signal: DeviceEventSignal, settings: EventNotify) -> bool:
        """Count the event; True if this one is to be notified (every Nth, limit period)."""
        row = await (await conn.execute(_COUNT_SQL, (signal.device_id, signal.code))).fetchone()
        assert row is not None
        if not due(row[0], settings.every_nth):
            return False
        since = signal.at - timedelta(seconds=settings.limit_period_s)
        claim = {"at": signal.at, "device": signal.device_id, "code": signal.code, "since": since}
        return await (await conn.execute(_CLAIM_SQL, claim)).fetchone() is not None

    async def recipients(
        self, conn: AsyncConnection[Any], signal: DeviceEventSignal, settings: EventNotify
    ) -> Recipients:
        """Resolve the settings' recipients for one device."""
        addresses = list(settings.addresses)
        if settings.meta_fields:
            cur = await conn.execute(_META_SQL, (signal.device_id, list(settings.meta_fields)))
            for (value,) in await cur.fetchall():
                addresses.extend(addresses_in(value))
        args = {
            "org": signal.org_id,
            "device": signal.device_id,
            "owner": "owner" in settings.recipients,
            "admins": "admins" in settings.recipients,
            "addresses": [a.lower() for a in addresses],
        }
        users = await (await conn.execute(_USERS_SQL, args)).fetchall()
        named = {a.lower() for a in addresses}
        addresses.extend(email for _, email in users if email.lower() not in named)
        return Recipients([user_id for user_id, _ in users], list(dict.fromkeys(addresses)))


def _values(signal: DeviceEventSignal, template_name: str, org_name: str) -> dict[str, str]:
    """The placeholders of an event notification."""
    at: datetime = signal.at
    return {
        "DEVICE_NAME": signal.device_name,
        "DEVICE_ID": str(signal.device_id),
        "EVENT_NAME": signal.name,
        "EVENT_CODE": signal.code,
        "EVENT_TYPE": signal.type,
        "EVENT_DESCRIPTION": signal.description,
        "TRIGGER_VALUE": signal.description,
        "TEMPLATE_NAME": template_name,
        "PRODUCT_NAME": template_name,
        "ORG_NAME": org_name,
        "TIMESTAMP": at.isoformat(timespec="seconds"),
    }
