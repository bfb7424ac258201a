"""The app's committed icons are what ``console_ui.app_icons`` draws (no third-party artwork, and
no drawing change left uncommitted); the manifest's large icons have the sizes it says."""

from __future__ import annotations

import struct

from console_ui import app_icons


def test_the_committed_icons_are_the_scripts_drawing() -> None:
    for name in ("icon-192.png", "apple-touch-icon.png", "icon.svg"):
        assert (app_icons.OUT / name).read_bytes() == app_icons.FILES[name](), name


def test_the_large_icons_are_512_pixels_square() -> None:
    for name in ("icon-512.png", "icon-maskable-512.png"):
        head = (app_icons.OUT / name).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (512, 512), name
