"""Wire types of notifications and preferences (the console's JSON API)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class NotificationOut(msgspec.Struct):
    """One notification, as the bell's list shows it."""

    id: int
    title: str
    body: str
    level: str
    device_id: int | None
    source: str
    source_id: int | None
    created_at: datetime
    read_at: datetime | None


class UnreadOut(msgspec.Struct):
    """How many of the user's notifications are unread."""

    unread: int


class MarkedOut(msgspec.Struct):
    """How many notifications a request marked read, and how many stay unread."""

    marked: int
    unread: int


class PrefsIn(msgspec.Struct, forbid_unknown_fields=True):
    """A user's notification preferences (every field optional: what is left out stays)."""

    email: bool | None = None
    in_app: bool | None = None
    muted: bool | None = None


class PrefsOut(msgspec.Struct):
    """A user's notification preferences."""

    email: bool
    in_app: bool
    muted: bool
