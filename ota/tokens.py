"""Expiring per-device download tokens: ``<shipment>.<device>.<expiry>.<mac>``.

The MAC is HMAC-SHA256 (truncated to 16 bytes, base64url) under a server key, so the
download route needs no table lookup to refuse a forged, altered or expired token, and a token
works only for the one device and shipment it was made for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from ota.errors import SignatureError

_MAC_BYTES = 16


@dataclass(frozen=True)
class DownloadGrant:
    """What a valid token allows."""

    shipment_id: int
    device_id: int
    expires: int  # Unix seconds


class DownloadTokens:
    """Makes and checks download tokens under ``key``."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise SignatureError("a download token key has at least 16 bytes")
        self._key = key

    def issue(self, shipment_id: int, device_id: int, expires: int) -> str:
        """A token for one device of one shipment, valid until ``expires`` (Unix seconds)."""
        body = f"{shipment_id}.{device_id}.{expires}"
        return f"{body}.{self._mac(body)}"

    def check(self, token: str, now: float) -> DownloadGrant:
        """The grant of a valid token; raises SignatureError (forged, malformed or expired)."""
        parts = token.split(".") if isinstance(token, str) and len(token) <= 200 else []
        if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
            raise SignatureError("malformed download token")
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], self._mac(body)):
            raise SignatureError("invalid download token")
        grant = DownloadGrant(int(parts[0]), int(parts[1]), int(parts[2]))
        if grant.expires < now:
            raise SignatureError("the download token has expired")
        return grant

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
