"""The image library's rules (issue #19 item 2), no server: an image's type is what its first
bytes say (PNG, JPEG or WebP), the declared type must agree, SVG is refused however it is
declared, a body is refused as soon as it passes the limit, and names keep no control characters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from backend.console.images import check_image, clean_name, read_limited, sniff
from backend.errors import ValidationError
from tests.support.images import jpeg_start, png, webp_start


def test_the_first_bytes_tell_the_type() -> None:
    assert sniff(png()) == "image/png"
    assert sniff(jpeg_start()) == "image/jpeg"
    assert sniff(webp_start()) == "image/webp"
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None  # a RIFF that is not a WebP
    assert sniff(b"GIF89a") is None
    assert sniff(b"") is None


def test_the_declared_type_must_agree_and_svg_is_refused() -> None:
    assert check_image("image/png", png()) == "image/png"
    assert check_image("IMAGE/JPEG; charset=binary", jpeg_start()) == "image/jpeg"
    assert check_image("application/octet-stream", webp_start()) == "image/webp"
    assert check_image("", png()) == "image/png"
    for declared, data, message in [
        ("image/jpeg", png(), "is a PNG image, not the JPEG"),
        ("image/png", b"\x00" * 16, "not a PNG image"),
        ("image/svg+xml", png(), "SVG images are refused"),
        ("image/png", b"  <svg/>", "SVG images are refused"),
        ("", b"<!-- x --><svg/>", "SVG images are refused"),
        ("image/gif", b"GIF89a", "must be PNG, JPEG or WebP"),
        ("", b"GIF89a", "not a PNG, JPEG or WebP image"),
    ]:
        with pytest.raises(ValidationError, match=message):
            check_image(declared, data)


def test_names_are_cleaned() -> None:
    assert clean_name(" lamp\x00on\n.png ") == "lamp on .png"
    assert clean_name("x" * 300) == "x" * 100
    with pytest.raises(ValidationError, match="needs a name"):
        clean_name("\x01 \t")


def test_a_body_is_refused_once_it_passes_the_limit() -> None:
    taken: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(10):
            taken.append(n)
            yield b"x" * 100

    with pytest.raises(ValidationError, match="larger than the limit of 250 bytes"):
        asyncio.run(read_limited(chunks(), None, 250))
    assert taken == [0, 1, 2]  # not read to the end
    with pytest.raises(ValidationError, match="larger than the limit"):
        asyncio.run(read_limited(chunks(), 251, 250))
    assert asyncio.run(read_limited(chunks(), None, 1000)) == b"x" * 1000
