"""Ed25519 signatures over what a device must trust about an image.

The signed message is the UTF-8 JSON array, without spaces::

    ["openblynk-fw-v1","<sha256 hex>",<size>,"<fw-type or empty>","<version or empty>"]

so any device can rebuild it from the offer (``sha256``, ``size``, ``type``, ``ver``). The
offer carries the signature as base64 (``sig``). The server's key is made on first start and
kept through a :class:`KeyStore`; devices pin its public key (32 raw bytes, served base64).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ota.errors import SignatureError

SCHEME = "openblynk-fw-v1"


def signed_message(sha256: bytes, size: int, fw_type: str | None, version: str | None) -> bytes:
    """The exact bytes that are signed for an image."""
    if len(sha256) != 32:
        raise SignatureError("a SHA-256 digest has 32 bytes")
    if size < 0:
        raise SignatureError("an image size cannot be negative")
    doc = [SCHEME, sha256.hex(), size, fw_type or "", version or ""]
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class KeyStore(Protocol):
    """Where the server's private key lives (PEM bytes), e.g. a file in the data directory."""

    def load(self) -> bytes | None:
        """The stored PEM, or None on first start."""

    def save_new(self, pem: bytes) -> bytes:
        """Store ``pem`` unless a key appeared meanwhile; return the key that is stored."""


class Signer:
    """The server's signing key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_store(cls, store: KeyStore) -> Signer:
        """Load the key, generating and storing one on first start."""
        pem = store.load()
        if pem is None:
            fresh = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            pem = store.save_new(fresh)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise SignatureError(f"the stored firmware signing key cannot be read: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SignatureError("the stored firmware signing key is not an Ed25519 key")
        return cls(key)

    def sign(self, sha256: bytes, size: int, fw_type: str | None, version: str | None) -> bytes:
        """The 64-byte signature of an image."""
        return self._key.sign(signed_message(sha256, size, fw_type, version))

    @property
    def public_key(self) -> bytes:
        """The 32 raw bytes devices pin."""
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def public_pem(self) -> str:
        """The public key as a PEM SubjectPublicKeyInfo."""
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )


def verify(
    public_key: bytes, signature: bytes, sha256: bytes, size: int, fw_type: str | None, version: str | None
) -> None:
    """Check a signature; raises SignatureError if it does not verify."""
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise SignatureError(f"not an Ed25519 public key: {exc}") from exc
    try:
        key.verify(signature, signed_message(sha256, size, fw_type, version))
    except InvalidSignature:
        raise SignatureError("the firmware signature does not verify") from None


def b64decode(text: str, what: str) -> bytes:
    """Strict base64 (standard alphabet); raises SignatureError naming ``what``."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise SignatureError(f"{what} is not valid base64") from None
