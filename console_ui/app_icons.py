"""The app's icons, drawn by this script (no third-party artwork): a white power symbol on the
brand blue, as PNG (192, 512, a maskable 512, a 180 px apple-touch-icon) and as SVG.

The files are committed under ``console_ui/static/app/``; run ``python -m console_ui.app_icons``
after changing the drawing (a unit test checks the committed files are what this draws). Only
the standard library (zlib) is used, so no imaging package is needed.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path

OUT = Path(__file__).resolve().parent / "static" / "app"
BLUE = (31, 111, 235)
WHITE = (255, 255, 255)
SAMPLES = 3
"""Sub-samples per pixel side, for smooth edges."""


def _inside(x: float, y: float, glyph_scale: float, rounded: bool) -> tuple[bool, bool]:
    """(in the background, in the glyph) for a point of the unit square."""
    r = 0.2 if rounded else 0.0
    cx, cy = min(max(x, r), 1 - r), min(max(y, r), 1 - r)
    background = (x - cx) ** 2 + (y - cy) ** 2 <= r * r if r else True
    dx, dy = (x - 0.5) / glyph_scale, (y - 0.5) / glyph_scale
    dist = math.hypot(dx, dy)
    angle = math.degrees(math.atan2(dx, -dy))  # 0 at the top, clockwise
    ring = 0.24 <= dist <= 0.32 and abs(angle) >= 35
    bar = abs(dx) <= 0.04 and -0.36 <= dy <= 0.0
    return background, ring or bar


def draw(size: int, glyph_scale: float = 1.0, rounded: bool = True) -> bytes:
    """The icon as RGBA rows (``size`` x ``size``)."""
    rows = bytearray()
    step = 1.0 / (size * SAMPLES)
    for py in range(size):
        rows.append(0)  # PNG filter type: none
        for px in range(size):
            bg = glyph = 0
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    b, g = _inside(
                        (px * SAMPLES + sx + 0.5) * step, (py * SAMPLES + sy + 0.5) * step, glyph_scale, rounded
                    )
                    bg += b
                    glyph += b and g
            n = SAMPLES * SAMPLES
            if bg == 0:
                rows += bytes((0, 0, 0, 0))
                continue
            mix = glyph / bg
            rgb = [round(BLUE[i] + (WHITE[i] - BLUE[i]) * mix) for i in range(3)]
            rows += bytes((*rgb, round(255 * bg / n)))
    return bytes(rows)


def png(size: int, glyph_scale: float = 1.0, rounded: bool = True) -> bytes:
    """A PNG file of the icon."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    raw = draw(size, glyph_scale, rounded)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
<rect width="100" height="100" rx="20" fill="#1f6feb"/>
<path d="M 33.9 27.1 A 28 28 0 1 0 66.1 27.1" fill="none" stroke="#fff" stroke-width="8"/>
<rect x="46" y="14" width="8" height="36" fill="#fff"/>
</svg>
"""

FILES: dict[str, Callable[[], bytes]] = {
    "icon-192.png": partial(png, 192),
    "icon-512.png": partial(png, 512),
    "icon-maskable-512.png": partial(png, 512, glyph_scale=0.75, rounded=False),
    "apple-touch-icon.png": partial(png, 180, rounded=False),
    "icon.svg": SVG.encode,
}
"""Each committed file and how it is made."""


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, make in FILES.items():
        (OUT / name).write_bytes(make())
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
