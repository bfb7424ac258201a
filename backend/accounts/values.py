"""Checks of what people type: e-mail addresses, passwords, display names."""

from __future__ import annotations

import re

from backend.errors import ValidationError

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
PASSWORD_MIN, PASSWORD_MAX = 8, 256


def check_email(email: str) -> str:
    """A plausible address, trimmed (the case is kept; look-ups ignore it)."""
    email = email.strip()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValidationError("enter a valid e-mail address")
    return email


def check_password(password: str) -> str:
    """A password long enough to resist guessing, and short enough to hash."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValidationError(f"a password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    return password


def check_name(name: str) -> str:
    """A person's display name (may be empty)."""
    name = name.strip()
    if len(name) > 100:
        raise ValidationError("a name may have at most 100 characters")
    return name
