"""Headless claiming, device side: open a claim window with a fresh PIN and prove the device holds
its static token's claim code (``claim/open``; the server is ``backend/inject/windows.py``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

PIN_DIGITS = 6
MAX_TTL = 600


def new_pin() -> str:
    """A random 6-digit PIN for the user to type."""
    return f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"


def claim_open_payload(claim_code: str, pin: str, ttl: int) -> bytes:
    """The ``claim/open`` message: the PIN, its proof keyed with the claim code, the window's length."""
    if not 1 <= ttl <= MAX_TTL:
        raise ValueError(f"ttl must be 1 to {MAX_TTL} seconds")
    proof = hmac.new(claim_code.encode(), f"claim/open:{pin}".encode(), hashlib.sha256).hexdigest()
    return json.dumps({"pin": pin, "proof": proof, "ttl": ttl}).encode()
