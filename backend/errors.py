"""The backend's exception tree. Services raise these; one handler maps them to HTTP and MQTT.

OpenBlynkError
├── ConfigError            settings that cannot work (raised at start-up)
├── DatabaseError          the database cannot be reached or started
├── NotFoundError          a named resource does not exist (or is not visible to the caller)
├── ConflictError          a unique name or token is already taken
├── AuthenticationError    no valid session (answered 401)
├── PermissionDeniedError  signed in, but the role lacks a permission, or CSRF failed (403)
├── RateLimitedError       too many attempts; ``retry_after`` seconds to wait (429)
│   └── NotificationLimitError  the organization's hourly e-mail notification limit is spent
├── MailError              an e-mail could not be handed to the SMTP server (503)
├── StorageFullError       the disk holding the data directory is full (507); nothing was kept
├── UnavailableError       a part the request needs (the broker process's control port) cannot be reached (503)
└── ValidationError        input that breaks a rule; ``message`` is safe to show to the sender
    │                      (also what a value the database refuses becomes: text with NUL)
    └── BlynkApiError      an error of Blynk's device API, carrying Blynk's exact message text
        ├── BlynkLimitError    a per-device daily limit is used up (answered 403, as Blynk's upload limit)
        └── BlynkServerError   an error Blynk answers with 500 (``No data``, an unknown enum constant)
"""

from __future__ import annotations

import errno


class OpenBlynkError(Exception):
    """Root of every error the backend raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(OpenBlynkError):
    """Settings that cannot work; the message says which variable to change."""


class DatabaseError(OpenBlynkError):
    """The database cannot be reached, started or migrated."""


class NotFoundError(OpenBlynkError):
    """A resource does not exist or is not visible to the caller."""


class ConflictError(OpenBlynkError):
    """A unique name or token is already taken."""


class AuthenticationError(OpenBlynkError):
    """The request carries no valid session (none, expired, ended, or its user is suspended)."""


class PermissionDeniedError(OpenBlynkError):
    """The caller is known but may not do this (a permission is missing, or the CSRF check failed)."""


class RateLimitedError(OpenBlynkError):
    """Too many attempts; the caller may try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class NotificationLimitError(RateLimitedError):
    """The organization sent as many notification e-mails this hour as
    ``OPENBLYNK_NOTIFICATION_EMAILS_PER_HOUR`` allows; ``retry_after`` runs to the next hour."""


class MailError(OpenBlynkError):
    """An e-mail could not be handed to the configured SMTP server."""


class UnavailableError(OpenBlynkError):
    """A part the request needs cannot be reached now (answered 503)."""


class StorageFullError(OpenBlynkError):
    """The file system of the data directory has no space left (ENOSPC, or the user's quota is
    used up: EDQUOT); what was being written was removed. Answered HTTP 507 Insufficient Storage."""

    def __init__(self, what: str, where: str = "the file system of the server's data directory") -> None:
        super().__init__(
            f"the disk is full: {what} could not be stored. Nothing was kept; free space on {where} "
            "(or grow it), then try again"
        )


def disk_full(exc: BaseException) -> bool:
    """True when ``exc`` is the operating system saying the file system (or quota) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class ValidationError(OpenBlynkError):
    """Input that breaks a rule; the message is meant for whoever sent it."""


class BlynkApiError(ValidationError):
    """An error of Blynk's device HTTP API, with Blynk's message text (answered as HTTP 400)."""


class BlynkLimitError(BlynkApiError):
    """A per-device daily limit of Blynk's device API is used up (answered as HTTP 403)."""


class BlynkServerError(BlynkApiError):
    """An error that Blynk answers with HTTP 500 although the request is at fault (``No data``)."""


# Blynk's error texts, byte for byte (../shared/reference/blynk-api.md section 2).
INVALID_TOKEN = "Invalid token."
NO_TOKEN = "No token provided."
WRONG_PIN = "Wrong pin format."
WRONG_TYPE = "Value doesn't match the Datastream data type."
NO_DATASTREAM = "No datastream setup for that pin."
WRONG_DATASTREAM_ID = "Wrong dataStreamId format."
BAD_PARAMS = "Request with incorrect parameters"
UNKNOWN_CONTENT_TYPE = "Unknown content type."
TOO_MUCH_DATA = "Too much data in batch. Maximum batch size is 10000 points."
NO_DATA = "No data"
UPLOAD_LIMIT = "File uploads limit has been reached."

# Ours: PostgreSQL cannot store NUL in text, so a request carrying one is refused (HTTP 400).
NUL_IN_TEXT = "Text must not contain the NUL character (\\u0000)."
