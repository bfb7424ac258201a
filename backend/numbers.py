"""Numbers in text that devices and users send (topics, query strings, headers)."""

from __future__ import annotations


def is_digits(text: str) -> bool:
    """Whether ``text`` is a non-empty run of ASCII digits, which ``int`` reads.

    ``str.isdigit`` alone is not enough: it also takes digits ``int`` cannot read, such as
    ``²``, and ``int`` then raises where the caller expected a clean refusal.
    """
    return text.isascii() and text.isdigit()
