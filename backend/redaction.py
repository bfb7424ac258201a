"""Secrets never reach a log line: a filter on the log handlers that blanks them at every level.

What it blanks (the value becomes ``***``, the name stays so the line still says what was sent):

- query-string and form fields, and ``name=value`` pairs, whose name ends in ``token``,
  ``secret`` or ``password`` (``?token=`` of the device API, ``client_secret=``,
  ``refresh_token=``, ``access_token=``, ``csrf_token=``, amqtt's ``password=`` of a CONNECT);
- the same names quoted as JSON or Python keys (``"password": "..."``);
- ``Basic`` and ``Bearer`` credentials (an ``Authorization`` header);
- anything shaped like a device token (32 characters of base64url standing alone), such as
  the token inside a Gateway API topic ``dev/<token>/...`` in the broker's DEBUG lines.

The filter formats the record's message itself (and its traceback), so the arguments of a
record can never bring a secret back; it sits on the handlers ``setup_logging`` installs, so it
sees the records of every logger (uvicorn's access log, amqtt, ours).
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_NAME = r"[A-Za-z0-9_.-]*(?:token|secret|password|passwd)"
_QUOTED = re.compile(rf"""(?i)(?P<keep>(["']){_NAME}\2\s*:\s*)(?P<secret>"[^"]*"|'[^']*'|[^\s,}}\]]+)""")
"""``"password": "x"``, ``'client_secret': 'x'``: a JSON or Python key and its value."""
_PAIR = re.compile(rf"(?i)(?P<keep>(?<![A-Za-z0-9_.-]){_NAME}=)(?P<secret>[^&\s\"',;)\]}}]+)")
"""``token=x&client_secret=y``, ``password=x)``: a query-string, form or ``repr`` field."""
_SCHEME = re.compile(
    r"(?P<keep>\b(?:Basic|Bearer|basic|bearer)\s+)"
    r"(?P<secret>(?=[A-Za-z0-9._~+/=-]*[A-Z0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,})"
)
"""``Basic <base64>``, ``Bearer <token>`` (a plain lower-case word after "basic" is left alone)."""
_DEVICE_TOKEN = re.compile(r"(?P<keep>)(?<![A-Za-z0-9_-])(?P<secret>[A-Za-z0-9_-]{32})(?![A-Za-z0-9_-])")
"""32 characters of base64url standing alone: a device token (24 random bytes)."""


def _mask(match: re.Match[str]) -> str:
    secret = match["secret"]
    quote = secret[0] if secret[0] in "\"'" and len(secret) > 1 and secret[-1] == secret[0] else ""
    return f"{match['keep']}{quote}{MASK}{quote}"


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``***``."""
    for pattern in (_QUOTED, _PAIR, _SCHEME, _DEVICE_TOKEN):
        text = pattern.sub(_mask, text)
    return text


class RedactSecrets(logging.Filter):
    """A handler filter that rewrites each record's message (and traceback) through :func:`redact`."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
