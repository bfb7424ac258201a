"""Secrets: device auth tokens, their HMAC and encrypted copy, and password hashing.

A device token is 32 characters of base64url (24 random bytes), Blynk's format. The database
keeps an HMAC-SHA256 of it for lookup (so a stolen database does not hand out working tokens)
and a Fernet-encrypted copy so the console can show it to its owner. Tokens are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from backend.errors import ValidationError

_TOKEN_RE = re.compile(r"^[-_a-zA-Z0-9]{32}$")


@dataclass(frozen=True, slots=True)
class AuthToken:
    """A device auth token: 32 characters of ``[-_a-zA-Z0-9]``."""

    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not _TOKEN_RE.match(self.value):
            raise ValidationError("a device token must be 32 characters of A-Z, a-z, 0-9, '-' or '_'")

    @classmethod
    def generate(cls) -> "AuthToken":
        """A new random token (24 bytes of entropy, base64url)."""
        return cls(base64.urlsafe_b64encode(secrets.token_bytes(24)).decode())

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"AuthToken({self.value[:4]}…)"


class Secrets:
    """Keys derived from the one secret key, each for one purpose (HKDF)."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("secret key must not be empty")
        self._hmac_key = _derive(secret_key, b"openblynk device-token hmac")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret_key, b"openblynk device-token fernet")))
        self._service_key = _derive(secret_key, b"openblynk mqtt service password")

    def token_hmac(self, token: AuthToken | str) -> bytes:
        """The lookup key stored for a token."""
        return hmac.new(self._hmac_key, str(token).encode(), hashlib.sha256).digest()

    def encrypt_token(self, token: AuthToken) -> str:
        """The token encrypted for display to its owner."""
        return self._fernet.encrypt(token.value.encode()).decode()

    def decrypt_token(self, blob: str) -> AuthToken:
        """The token back from its encrypted copy."""
        try:
            return AuthToken(self._fernet.decrypt(blob.encode()).decode())
        except InvalidToken as exc:
            raise ValidationError("stored token cannot be decrypted: was OPENBLYNK_SECRET_KEY changed?") from exc

    def service_password(self) -> str:
        """The MQTT password of the platform's own service clients (the app's ingest)."""
        return base64.urlsafe_b64encode(self._service_key).decode().rstrip("=")

    def check_service_password(self, candidate: str | None) -> bool:
        """Constant-time check of a service password."""
        return candidate is not None and hmac.compare_digest(candidate, self.service_password())


def _derive(secret_key: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret_key.encode())


# -- passwords (scrypt: memory-hard, from the cryptography package) ---------------------
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1


def hash_password(password: str) -> str:
    """A salted scrypt hash in a self-describing string."""
    salt = secrets.token_bytes(16)
    digest = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(password.encode())
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the stored hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    kdf = Scrypt(salt=base64.b64decode(salt), length=32, n=int(n), r=int(r), p=int(p))
    try:
        kdf.verify(password.encode(), base64.b64decode(digest))
    except Exception:
        return False
    return True
