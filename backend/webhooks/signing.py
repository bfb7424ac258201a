"""The signature of a webhook request, so its receiver can tell it came from this server.

Each webhook has its own secret (shown in the console). Every request carries two headers:

- ``X-Openblynk-Timestamp``: the time it was signed, in whole seconds since 1970 (UTC);
- ``X-Openblynk-Signature``: ``sha256=`` and the lower-case hex HMAC-SHA256, keyed with the
  secret, of the timestamp, a dot, and the body's bytes exactly as sent
  (``f"{timestamp}.".encode() + body``; an empty body for a GET).

A receiver recomputes the HMAC over the same bytes, compares in constant time, and refuses a
timestamp more than a few minutes away from its own clock: binding the time into the
signature is what keeps a captured request from being replayed later (:func:`verify` does
all three).

Secrets are kept encrypted in the database (:class:`SecretBox`, Fernet with a key derived from
``OPENBLYNK_SECRET_KEY`` for this use only), as device tokens are: a copy of the database
alone does not let anyone sign requests as this server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.errors import ValidationError

SIGNATURE_HEADER = "X-Openblynk-Signature"
TIMESTAMP_HEADER = "X-Openblynk-Timestamp"
PREFIX = "sha256="
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    """A fresh webhook secret: 32 random bytes, URL-safe text."""
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Openblynk-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return PREFIX + digest


def headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Both signature headers of one request."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: str, sent: str, timestamp: str, body: bytes, now: float, tolerance_s: int = DEFAULT_TOLERANCE_S
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sent, signature(secret, int(timestamp), body))


class SecretBox:
    """Seals webhook secrets for the database and opens them to sign or show."""

    def __init__(self, secret_key: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"openblynk webhook secret fernet").derive(
            secret_key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, secret: str) -> str:
        """``secret`` as stored."""
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """A stored secret back; ``ValidationError`` if it cannot be read."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValidationError("the webhook's secret cannot be read: was OPENBLYNK_SECRET_KEY changed?") from exc
