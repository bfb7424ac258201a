"""Secrets: device auth tokens, their HMAC and encrypted copy, and password hashing (argon2id).

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

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidKey
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
    def generate(cls) -> AuthToken:
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
        self._proxy_key = _derive(secret_key, b"openblynk mqtt proxy header hmac")
        self._control_key = _derive(secret_key, b"openblynk broker control token")

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

    def mqtt_proxy_key(self) -> bytes:
        """The key signing the WebSocket bridge's PROXY headers to the broker (its ``proxy_key``)."""
        return self._proxy_key

    def broker_control_token(self) -> str:
        """The bearer token the app sends to the broker process's loopback control port (its
        list of gateway and integration sessions, and "disconnect now")."""
        return base64.urlsafe_b64encode(self._control_key).decode().rstrip("=")


def _derive(secret_key: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret_key.encode())


# -- passwords ------------------------------------------------------------------------
# New hashes are argon2id (argon2-cffi's defaults, RFC 9106's second recommendation). Hashes
# written by earlier releases are scrypt strings (``scrypt$N$r$p$salt$digest``); they still
# verify, and ``password_needs_rehash`` says so, so that a login replaces them with argon2id.
_ARGON2 = PasswordHasher()
_SCRYPT_PREFIX = "scrypt$"


def hash_password(password: str) -> str:
    """A salted argon2id hash in its self-describing PHC string."""
    return _ARGON2.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the stored hash (argon2id, or a legacy scrypt one)."""
    if stored.startswith(_SCRYPT_PREFIX):
        return _verify_scrypt(password, stored)
    try:
        return _ARGON2.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored: str) -> bool:
    """True when the stored hash is legacy scrypt or argon2 with weaker parameters than now."""
    if stored.startswith(_SCRYPT_PREFIX):
        return True
    try:
        return _ARGON2.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        _scheme, n, r, p, salt, digest = stored.split("$")
        kdf = Scrypt(salt=base64.b64decode(salt), length=32, n=int(n), r=int(r), p=int(p))
        kdf.verify(password.encode(), base64.b64decode(digest))
    except (ValueError, InvalidKey):
        return False
    return True
