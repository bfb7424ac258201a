"""Headless claiming (issue #17 item 3): a device without a screen or access point opens a claim
window; a user who types the device's serial and the window's PIN claims it.

The device publishes ``claim/open`` with ``{"pin": "<6-12 letters or digits>", "proof": "<hex>",
"ttl": <seconds>}``: ``proof`` is HMAC-SHA256 keyed with its static token's claim code (flashed
with the auth token, never sent) over ``claim/open:<pin>``. The window opens only for an
unclaimed static-token device whose proof checks, for ``ttl`` seconds (at most
:data:`MAX_TTL`), and closes at its first claim. So a token read out of a device opens nothing
(it does not give the claim code), and a PIN claims only within its window, once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from backend.db.engine import Database
from backend.db.sql import execute, fetch_one
from backend.inject.codes import ClaimCode
from backend.security import Secrets

MAX_TTL = 600
DEFAULT_TTL = 300
PIN = re.compile(r"^[A-Za-z0-9]{6,12}$")


def claim_proof(claim_code: str, pin: str) -> str:
    """What a device sends to open a window with ``pin`` (the SDK computes the same)."""
    return hmac.new(claim_code.encode(), f"claim/open:{pin}".encode(), hashlib.sha256).hexdigest()


class ClaimWindows:
    """Opens windows from what devices publish (in the ingest)."""

    def __init__(self, db: Database, secrets: Secrets) -> None:
        self.db = db
        self.secrets = secrets

    async def open(self, device_id: int, payload: bytes) -> str | None:
        """Open the device's window; None, or why not (for ``downlink/diag``)."""
        try:
            doc = json.loads(payload)
            pin, proof, ttl = doc["pin"], doc["proof"], doc.get("ttl", DEFAULT_TTL)
            if not isinstance(pin, str) or not PIN.match(pin) or not isinstance(proof, str):
                raise ValueError("pin must be 6 to 12 letters or digits, proof a string")
            if not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
                raise ValueError(f"ttl must be 1 to {MAX_TTL} seconds")
        except (ValueError, KeyError, TypeError) as exc:
            return f"claim/open: expected {{pin, proof, ttl}} ({exc})"
        async with self.db.session() as session:
            row = await fetch_one(
                session,
                "SELECT id, claim_encrypted FROM static_token WHERE device_id = :d AND claimed_at IS NULL",
                d=device_id,
            )
            if row is None:
                return "claim/open: only an unclaimed static-token device opens a claim window"
            code = ClaimCode(self.secrets.decrypt_token(row["claim_encrypted"]).value)
            if not hmac.compare_digest(claim_proof(code.value, pin), proof.lower()):
                return "claim/open: the proof does not match this device's claim code"
            await execute(
                session,
                """INSERT INTO claim_window (static_token_id, pin_hmac, until)
                VALUES (:id, :pin, now() + make_interval(secs => :ttl))
                ON CONFLICT (static_token_id) DO UPDATE SET pin_hmac = EXCLUDED.pin_hmac, until = EXCLUDED.until""",
                id=row["id"],
                pin=pin_hmac(self.secrets, pin),
                ttl=ttl,
            )
        return None


def pin_hmac(secrets: Secrets, pin: str) -> bytes:
    """How a window's PIN is kept and looked up."""
    return secrets.token_hmac(f"claim-pin:{pin}")
