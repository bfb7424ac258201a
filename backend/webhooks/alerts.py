"""Telling an organization's administrators that one of its webhooks was disabled.

A webhook that failed ``OPENBLYNK_WEBHOOK_FAILURE_LIMIT`` times in a row is disabled by the
sender; its organization's administrators (users whose role holds every permission) get an
in-app notification and an e-mail, and the audit log gets a ``webhook.auto_disable`` entry.
One failing channel does not keep the others from being tried.
"""

from __future__ import annotations

import logging

from backend.accounts.mail import Mailer
from backend.audit.services import AuditService
from backend.db.engine import Database
from backend.errors import MailError
from backend.notifications.service import Notifier

log = logging.getLogger(__name__)

_ADMINS_SQL = """SELECT u.id, u.email FROM app_user u JOIN role r ON r.id = u.role_id
WHERE u.org_id = %s AND u.status = 'active' AND '*' = ANY(r.permissions) ORDER BY u.id"""


class AdminAlerts:
    """Sends the "webhook disabled" notice (see the module's docstring)."""

    def __init__(self, db: Database, mailer: Mailer, notifier: Notifier | None) -> None:
        self.db = db
        self.mailer = mailer
        self.notifier = notifier

    async def webhook_disabled(self, org_id: int, webhook_id: int, name: str, reason: str) -> None:
        """Tell the admins of ``org_id`` that webhook ``name`` was disabled, and why."""
        async with self.db.pool.connection() as conn:
            admins = await (await conn.execute(_ADMINS_SQL, (org_id,))).fetchall()
        title = f"Webhook {name!r} was disabled"
        body = (
            f"The webhook {name!r} failed too many times in a row and was disabled: {reason}\n"
            "Check its delivery log in Settings → Developers → Webhooks, fix it and enable it again."
        )
        if self.notifier is not None and admins:
            try:
                await self.notifier.in_app(
                    org_id,
                    [row[0] for row in admins],
                    title,
                    body,
                    source="webhook",
                    source_id=webhook_id,
                    level="warning",
                )
            except Exception:
                log.exception("the in-app notice of disabled webhook %s failed", webhook_id)
        for _, email in admins:
            try:
                await self.mailer.send(email, title, body)
            except MailError:
                log.warning("the e-mail about disabled webhook %s to %s could not be sent", webhook_id, email)
        async with self.db.session() as session:
            await AuditService(session).record(
                None, org_id, "webhook.auto_disable", "webhook", webhook_id, actor_email="system", reason=reason
            )
