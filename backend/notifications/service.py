"""The :class:`Notifier`: in-app notifications and notification e-mail, one per app process.

Everything that notifies people goes through it: the event notifications of templates
(``backend.notifications.events``) and the automations' ``notify`` and ``email`` actions.

- :meth:`Notifier.in_app` stores one notification per user who wants in-app notifications
  (``notification_pref``: no row means yes) and, in the same transaction, sends the change
  notice ``notice:<user id>`` so that every app process tells that user's open console pages
  (the bell) at once.
- :meth:`Notifier.email` sends through the app's :class:`~backend.accounts.mail.Mailer` (SMTP
  or the ``.eml`` outbox). An address belonging to a user who turned e-mail off (or muted
  notifications) is left out. The organization's e-mails are counted per hour in the
  database (``notification_email_hour``, shared by every app process); once
  ``OPENBLYNK_NOTIFICATION_EMAILS_PER_HOUR`` is spent the call sends nothing and raises
  :class:`~backend.errors.NotificationLimitError`. A call is all or nothing: when its
  addresses do not all fit in what is left of the hour, none is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from backend.accounts.mail import Mailer
from backend.db.changes import CHANNEL
from backend.errors import NotificationLimitError

log = logging.getLogger(__name__)

TITLE_MAX = 200
BODY_MAX = 2000
SOURCES = frozenset({"event", "automation", "webhook", "system"})
LEVELS = frozenset({"info", "warning", "critical", "content"})

_IN_APP_SQL = f"""WITH target AS (
    SELECT u.id FROM app_user u LEFT JOIN notification_pref p ON p.user_id = u.id
    WHERE u.org_id = %(org)s AND u.status = 'active' AND (%(all)s OR u.id = ANY(%(ids)s))
      AND coalesce(p.in_app, true) AND NOT coalesce(p.muted, false)
), stored AS (
    INSERT INTO notification (org_id, user_id, title, body, level, device_id, source, source_id)
    SELECT %(org)s, id, %(title)s, %(body)s, %(level)s, %(device)s, %(source)s, %(source_id)s FROM target
    RETURNING user_id
)
SELECT user_id, pg_notify('{CHANNEL}', 'notice:' || user_id) FROM stored"""

_OPTED_OUT_SQL = """SELECT lower(u.email) FROM app_user u JOIN notification_pref p ON p.user_id = u.id
WHERE lower(u.email) = ANY(%s) AND (NOT p.email OR p.muted)"""

_RESERVE_SQL = """INSERT INTO notification_email_hour AS h (org_id, hour, sent)
VALUES (%(org)s, date_trunc('hour', now()), %(n)s)
ON CONFLICT (org_id, hour) DO UPDATE SET sent = h.sent + EXCLUDED.sent
WHERE %(limit)s = 0 OR h.sent + EXCLUDED.sent <= %(limit)s
RETURNING sent"""

_FORGET_SQL = "DELETE FROM notification_email_hour WHERE org_id = %s AND hour < date_trunc('hour', now())"


def clip(text: str, limit: int) -> str:
    """Text as stored: NUL removed (PostgreSQL cannot keep it), at most ``limit`` characters."""
    text = text.replace("\x00", "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Notifier:
    """In-app notifications and notification e-mail (see the module's docstring)."""

    def __init__(self, pool: AsyncConnectionPool, mailer: Mailer, emails_per_hour: int) -> None:
        self.pool = pool
        self.mailer = mailer
        self.emails_per_hour = emails_per_hour

    async def in_app(
        self,
        org_id: int,
        user_ids: Sequence[int] | None,
        title: str,
        body: str,
        *,
        device_id: int | None = None,
        source: str = "automation",
        source_id: int | None = None,
        level: str = "info",
    ) -> int:
        """Notify these users of the organization (None: every user of it) who want in-app
        notifications; how many were notified. Users of other organizations are skipped."""
        if source not in SOURCES or level not in LEVELS:
            raise ValueError(f"unknown notification source {source!r} or level {level!r}")
        if user_ids is not None and not user_ids:
            return 0
        title = clip(title, TITLE_MAX) or "Notification"
        args = {
            "org": org_id,
            "all": user_ids is None,
            "ids": list(user_ids or ()),
            "title": title,
            "body": clip(body, BODY_MAX),
            "level": level,
            "device": device_id,
            "source": source,
            "source_id": source_id,
        }
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(_IN_APP_SQL, args)).fetchall()
        return len(rows)

    async def email(self, org_id: int, to: Sequence[str], subject: str, body: str) -> None:
        """Send one e-mail to each address (see the module's docstring for who is left out and
        the hourly limit); ``NotificationLimitError`` when the limit is spent, ``MailError``
        when the SMTP server refuses a message."""
        addresses = list(dict.fromkeys(a.strip() for a in to if a.strip()))
        if not addresses:
            return
        async with self.pool.connection() as conn:
            cur = await conn.execute(_OPTED_OUT_SQL, ([a.lower() for a in addresses],))
            opted_out = {row[0] for row in await cur.fetchall()}
            addresses = [a for a in addresses if a.lower() not in opted_out]
            if not addresses:
                return
            await self._reserve(conn, org_id, len(addresses))
        subject = clip(subject, TITLE_MAX).replace("\r", " ").replace("\n", " ")
        for address in addresses:
            await self.mailer.send(address, subject, body.replace("\x00", ""))

    async def _reserve(self, conn: AsyncConnection[Any], org_id: int, count: int) -> None:
        """Count ``count`` e-mails in the organization's hour, or raise when they do not fit."""
        limit = self.emails_per_hour
        reserved = None
        if limit == 0 or count <= limit:
            await conn.execute(_FORGET_SQL, (org_id,))
            cur = await conn.execute(_RESERVE_SQL, {"org": org_id, "n": count, "limit": limit})
            reserved = await cur.fetchone()
        if reserved is None:
            now = datetime.now(UTC)
            next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            log.warning("organization %s: hourly notification e-mail limit (%s) spent", org_id, limit)
            raise NotificationLimitError(
                f"this organization has sent its {limit} notification e-mails for this hour "
                f"(OPENBLYNK_NOTIFICATION_EMAILS_PER_HOUR); e-mail is sent again from "
                f"{next_hour:%H:%M} UTC",
                retry_after=int((next_hour - now).total_seconds()) + 1,
            )
