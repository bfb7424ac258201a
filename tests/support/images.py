"""Small real images for tests (standard library only): a solid PNG the browser decodes, and
files that only start as a JPEG or WebP does (the server looks at the first bytes only)."""

from __future__ import annotations

import struct
import zlib


def png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (31, 111, 235)) -> bytes:
    """A valid ``width`` x ``height`` PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def jpeg_start(size: int = 64) -> bytes:
    """Bytes that begin as a JPEG (SOI and an APP0 marker), ``size`` long."""
    return (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * (size // 256 + 1))[:size]


def webp_start(size: int = 64) -> bytes:
    """Bytes that begin as a WebP (a RIFF container of type WEBP), ``size`` long."""
    return (b"RIFF" + struct.pack("<I", size - 8) + b"WEBPVP8 " + bytes(size))[:size]
