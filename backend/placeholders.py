"""Blynk's placeholders in texts written by users: ``{DEVICE_NAME}``, ``{TRIGGER_VALUE}``...

Automations' e-mails and notifications, event notifications and webhook bodies are written
with placeholders in braces; :func:`render` puts the values in. A placeholder the values do
not name stays as written (a typo shows in the message instead of vanishing), and a value is
put in as text, never read again for placeholders (a device named ``{ORG_NAME}`` stays that).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]{0,63})\}")
"""``{NAME}``: a letter, then letters, digits or underscores (Blynk's are upper case; webhook
bodies also use ``{device_dataStream_X}``-like names, so case is kept as written)."""


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{NAME}`` that ``values`` names replaced by its value."""

    def put(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return match.group(0) if value is None else value

    return PLACEHOLDER.sub(put, template)


def names(template: str) -> list[str]:
    """The placeholders ``template`` uses, in order of first use (to check them when saved)."""
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))
