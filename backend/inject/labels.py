"""Printable QR labels of static tokens: one SVG sheet (A4, 3 × 8 labels a page, pages stacked),
each label a QR code (drawn by segno) with the claim code, the template and the token's metadata
in text. The QR code holds the console's claim link (``<public URL>/claim?code=sqr_…``, which a
phone's camera opens) when ``OPENBLYNK_PUBLIC_URL`` is set, else the bare code. Every text is
escaped: metadata comes from a CSV file."""

from __future__ import annotations

from xml.sax.saxutils import escape

import segno

from backend.inject.static_tokens import Issued

COLUMNS, ROWS = 3, 8
MM = 3.7795  # SVG user units (CSS px) per millimetre
LABEL_W, LABEL_H = 70 * MM, 37 * MM  # a common 3 × 8 A4 label sheet
PAGE_W, PAGE_H = 210 * MM, 297 * MM
MARGIN_TOP = (PAGE_H - ROWS * LABEL_H) / 2
QR_SCALE = 3


def label_sheet(issued: list[Issued], public_url: str = "") -> str:
    """The SVG document of every label, in order."""
    pages = max(1, -(-len(issued) // (COLUMNS * ROWS)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PAGE_W:.0f}" height="{PAGE_H * pages:.0f}" '
        f'viewBox="0 0 {PAGE_W:.0f} {PAGE_H * pages:.0f}" font-family="sans-serif">'
    ]
    for n, item in enumerate(issued):
        page, slot = divmod(n, COLUMNS * ROWS)
        row, col = divmod(slot, COLUMNS)
        x, y = col * LABEL_W, page * PAGE_H + MARGIN_TOP + row * LABEL_H
        parts.append(_label(item, x, y, public_url.rstrip("/")))
    parts.append("</svg>")
    return "".join(parts)


def claim_link(code: str, public_url: str) -> str:
    """What a label's QR code holds."""
    return f"{public_url}/claim?code={code}" if public_url else code


def _label(item: Issued, x: float, y: float, public_url: str) -> str:
    qr = segno.make(claim_link(item.claim_code.value, public_url), error="m")
    size = qr.symbol_size(scale=QR_SCALE, border=2)[0]
    text_x = size + 4
    lines = [item.token.template_name[:28], *(f"{k}: {v}"[:28] for k, v in sorted(item.token.meta.items()))][:5]
    texts = "".join(
        f'<text x="{text_x}" y="{18 + 14 * i}" font-size="{11 if i == 0 else 9}">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    code = escape(item.claim_code.value)
    return (
        f'<g transform="translate({x:.1f},{y + (LABEL_H - size) / 2:.1f})">'
        f"{qr.svg_inline(scale=QR_SCALE, border=2)}{texts}"
        f'<text x="4" y="{size + 10}" font-size="7" font-family="monospace">{code}</text></g>'
    )
