"""The webhooks' long-lived parts, built once per app process and started by its lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from backend.accounts.mail import Mailer
from backend.db.engine import Database
from backend.devices.signals import DeviceSignals
from backend.notifications.service import Notifier
from backend.settings import Settings
from backend.webhooks.alerts import AdminAlerts
from backend.webhooks.delivery import WebhookSender
from backend.webhooks.guard import AddressGuard
from backend.webhooks.signing import SecretBox
from backend.webhooks.triggers import WebhookTriggers


@dataclass(frozen=True)
class WebhookRuntime:
    """The sender (with its queue and workers) and the triggers feeding it."""

    sender: WebhookSender
    triggers: WebhookTriggers

    @classmethod
    def build(cls, db: Database, settings: Settings, signals: DeviceSignals, mailer: Mailer) -> WebhookRuntime:
        """Make the parts; nothing starts yet (the admins' notice uses its own :class:`Notifier`:
        it keeps no state of its own, the hourly e-mail counts are in the database)."""
        notifier = Notifier(db.pool, mailer, settings.notification_emails_per_hour)
        names, networks = settings.webhook_allowed
        sender = WebhookSender(
            db.pool,
            AddressGuard(names, networks),
            SecretBox(settings.resolved_secret_key()),
            failure_limit=settings.webhook_failure_limit,
            alert=AdminAlerts(db, mailer, notifier),
        )
        return cls(sender, WebhookTriggers(db.pool, signals, sender))

    async def start(self) -> None:
        """Start the delivery workers and watch what the enabled webhooks need."""
        self.sender.start()
        await self.triggers.load()

    async def stop(self) -> None:
        """Stop watching, then stop the workers."""
        await self.triggers.stop()
        await self.sender.stop()
