"""Firmware images: the info tag, hashes and size in one streaming pass."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ota import FirmwareError, ImageScanner, build_tag, find_info
from ota.image import MAX_TAG_BYTES

TAG = {"mcu": "1.2.0", "fw-type": "TMPLabcd1234", "build": "Jan 19 2024 12:25:30", "blynk": "1.3.2"}
_token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ .,:-()", min_size=1, max_size=20
)


def _scan(data: bytes, cuts: list[int]) -> ImageScanner:
    scanner = ImageScanner()
    last = 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        scanner.update(data[last:cut])
        last = cut
    return scanner


def test_known_keys_are_read() -> None:
    info = find_info(b"\x00\xff" * 100 + build_tag(TAG) + b"\x01" * 50)
    assert info is not None
    assert (info.version, info.fw_type, info.build, info.blynk) == (
        "1.2.0",
        "TMPLabcd1234",
        "Jan 19 2024 12:25:30",
        "1.3.2",
    )


def test_blynk_wire_format_exactly() -> None:
    raw = b"blnkinf\0mcu\x000.5.0\0fw-type\0TMPL1\0\0"
    assert build_tag({"mcu": "0.5.0", "fw-type": "TMPL1"}) == raw
    info = find_info(raw)
    assert info is not None and info.version == "0.5.0" and info.fw_type == "TMPL1" and info.build is None


def test_no_tag_is_valid_and_empty_tag_is_empty() -> None:
    assert find_info(b"plain firmware") is None
    info = find_info(b"xxblnkinf\0\0yy")
    assert info is not None and info.version is None and dict(info.pairs) == {}


def test_first_tag_wins() -> None:
    info = find_info(build_tag({"mcu": "1.0.0"}) + build_tag({"mcu": "2.0.0"}))
    assert info is not None and info.version == "1.0.0"


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"blnkinf\0mcu\0" + b"1" * (MAX_TAG_BYTES + 10), "longer than"),
        (b"blnkinf\0mcu\x001.0", "not terminated"),
        (b"blnkinf\0mcu\x001.0\0build\0\0", "without a value"),
        (b"blnkinf\0mcu\x001\xff0\0\0", "not ASCII"),
        (b"blnkinf\0mcu\x001;0\0\0", "malformed entry"),
    ],
)
def test_broken_tags_are_refused_with_a_reason(raw: bytes, message: str) -> None:
    with pytest.raises(FirmwareError, match=message):
        scanner = ImageScanner()
        scanner.update(raw)
        scanner.finish()


def test_empty_and_too_large_images_are_refused() -> None:
    with pytest.raises(FirmwareError, match="empty"):
        ImageScanner().finish()
    scanner = ImageScanner(max_bytes=10)
    scanner.update(b"x" * 10)
    with pytest.raises(FirmwareError, match="larger than the limit of 10 bytes"):
        scanner.update(b"x")


def test_bad_tag_characters_are_refused_when_building() -> None:
    with pytest.raises(FirmwareError):
        build_tag({"mcu": "1;2"})


@settings(max_examples=200)
@given(
    prefix=st.binary(max_size=300),
    suffix=st.binary(max_size=300),
    pairs=st.dictionaries(_token, _token, max_size=5),
    cuts=st.lists(st.integers(0, 2000), max_size=12),
)
def test_any_chunking_gives_the_same_digest_and_tag(
    prefix: bytes, suffix: bytes, pairs: dict[str, str], cuts: list[int]
) -> None:
    prefix = prefix.replace(b"blnkinf", b"blnk_nf")
    data = prefix + build_tag(pairs) + suffix
    digest = _scan(data, cuts).finish()
    assert digest.size == len(data)
    assert digest.sha256 == hashlib.sha256(data).digest()
    assert digest.md5 == hashlib.md5(data).digest()
    assert digest.info is not None and dict(digest.info.pairs) == pairs


@given(data=st.binary(min_size=1, max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_arbitrary_bytes_never_crash(data: bytes, cuts: list[int]) -> None:
    try:
        digest = _scan(data, cuts).finish()
    except FirmwareError:
        return
    assert digest.sha256_hex == hashlib.sha256(data).hexdigest()
