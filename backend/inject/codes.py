"""Claim codes: what a static token's QR label carries, apart from the device's auth token.

A claim code is ``sqr_`` and 28 characters of base64url (21 random bytes, 168 bits), the
32 characters of an auth token's alphabet, so it is stored the way tokens are: HMAC for the
lookup, Fernet for the labels. It only claims; a device cannot log in with it, and a device's
auth token is never a claim code (no ``sqr_``)."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field

from backend.errors import ValidationError
from backend.security import AuthToken

PREFIX = "sqr_"
_CODE_RE = re.compile(r"^sqr_[-_a-zA-Z0-9]{28}$")


@dataclass(frozen=True, slots=True)
class ClaimCode:
    """A static token's claim code (``sqr_`` + 28 characters)."""

    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not _CODE_RE.match(self.value):
            raise ValidationError("a claim code is 'sqr_' and 28 characters of A-Z, a-z, 0-9, '-' or '_'")

    @classmethod
    def generate(cls) -> ClaimCode:
        """A new random code."""
        return cls(PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(21)).decode())

    @classmethod
    def parse(cls, text: str) -> ClaimCode | None:
        """The code typed or scanned (surrounding blanks ignored), or None if it cannot be one."""
        text = text.strip() if isinstance(text, str) else ""
        return cls(text) if _CODE_RE.match(text) else None

    def sealed(self) -> AuthToken:
        """The code as a token-shaped value, for ``Secrets.encrypt_token`` and ``token_hmac``."""
        return AuthToken(self.value)

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"ClaimCode({self.value[:6]}…)"
