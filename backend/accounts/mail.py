"""Outgoing e-mail: through the configured SMTP server, or into an outbox folder.

With ``OPENBLYNK_SMTP_HOST`` set, a message is handed to that server (stdlib ``smtplib`` in a
worker thread, so the event loop never waits on the network). With none, each message is
written as an ``.eml`` file to ``DATA_DIR/mail`` and logged whole, so a self-hoster without a
mail server can still open a sign-up or reset link.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from backend.errors import MailError
from backend.settings import Settings

log = logging.getLogger(__name__)
SMTP_TIMEOUT = 20.0


class Mailer:
    """Sends plain-text e-mail as the settings say."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outbox = settings.data_dir / "mail"

    async def send(self, to: str, subject: str, body: str) -> None:
        """Send one message; ``MailError`` if the SMTP server refuses it or cannot be reached."""
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain="openblynk")
        message.set_content(body)
        if not self.settings.smtp_host:
            path = await asyncio.to_thread(self._write, message)
            log.info("no SMTP server configured: e-mail to %s (%s) written to %s:\n%s", to, subject, path, body)
            return
        try:
            await asyncio.to_thread(self._smtp, message)
        except (OSError, smtplib.SMTPException) as exc:
            log.error(
                "e-mail to %s could not be sent through %s:%s: %s",
                to,
                self.settings.smtp_host,
                self.settings.smtp_port,
                exc,
            )
            raise MailError(
                "the e-mail could not be sent; try again later or ask the administrator to check the SMTP settings"
            ) from exc

    def _write(self, message: EmailMessage) -> Path:
        self.outbox.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.outbox / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(message.as_bytes())
        return path

    def _smtp(self, message: EmailMessage) -> None:
        s = self.settings
        smtp: smtplib.SMTP
        if s.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT)
        with smtp:
            if s.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password)
            smtp.send_message(message)
