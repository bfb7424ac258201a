"""Firmware images: the Blynk info tag, hashes and size, computed in one streaming pass.

The info tag (reference §1.7) is ``blnkinf\\0`` followed by NUL-separated key/value pairs and
an extra ``\\0``: ``blnkinf\\0mcu\\01.2.0\\0fw-type\\0TMPL1234\\0build\\0Jan 19 2024 12:25:30\\0\\0``.
Keys and values use the characters of Blynk's own tool (``[\\w\\s.,:\\-()]``). The first tag in
the image counts; an image without a tag is valid (the offer then carries no type/ver/build).
``.tar`` packages are scanned as they are (tar does not compress), so a tag inside one of the
archived binaries is found too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ota.errors import FirmwareError

MAGIC = b"blnkinf\0"
MAX_TAG_BYTES = 1024
_TOKEN = re.compile(r"^[\w\s.,:\-()]+$")
KNOWN_KEYS = {"mcu": "version", "fw-type": "fw_type", "build": "build", "blynk": "blynk"}


@dataclass(frozen=True)
class FirmwareInfo:
    """What the info tag says; every field is None when the tag does not name it."""

    version: str | None = None
    fw_type: str | None = None
    build: str | None = None
    blynk: str | None = None
    pairs: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: Mapping[str, str]) -> FirmwareInfo:
        """Pick the known keys (``mcu``, ``fw-type``, ``build``, ``blynk``) out of all pairs."""
        known = {attr: pairs[key] for key, attr in KNOWN_KEYS.items() if key in pairs}
        return cls(**known, pairs=dict(pairs))


@dataclass(frozen=True)
class ImageDigest:
    """Everything one pass over an image learns."""

    size: int
    sha256: bytes
    md5: bytes
    info: FirmwareInfo | None

    @property
    def sha256_hex(self) -> str:
        """The SHA-256 as 64 lowercase hex digits (how images are stored)."""
        return self.sha256.hex()


def parse_tag_body(body: bytes) -> FirmwareInfo:
    """The pairs between ``blnkinf\\0`` and the closing ``\\0\\0``; raises FirmwareError."""
    tokens = body.split(b"\0") if body else []
    if len(tokens) % 2:
        raise FirmwareError("the firmware info tag has a key without a value")
    pairs: dict[str, str] = {}
    for i in range(0, len(tokens), 2):
        try:
            key, value = tokens[i].decode("ascii"), tokens[i + 1].decode("ascii")
        except UnicodeDecodeError:
            raise FirmwareError("the firmware info tag holds bytes that are not ASCII") from None
        for text in (key, value):
            if not _TOKEN.match(text):
                raise FirmwareError(f"the firmware info tag holds a malformed entry {text[:40]!r}")
        pairs.setdefault(key, value)
    return FirmwareInfo.from_pairs(pairs)


def find_info(data: bytes) -> FirmwareInfo | None:
    """The info tag of a whole image in memory (see :class:`ImageScanner` for streams)."""
    scanner = ImageScanner()
    scanner.update(data)
    return scanner.finish().info


class ImageScanner:
    """Feed an image chunk by chunk; :meth:`finish` gives its :class:`ImageDigest`.

    Args:
        max_bytes: Refuse (FirmwareError) as soon as the image grows past this size.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._sha = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._pending = b""  # bytes that may still start (or hold) the tag
        self._info: FirmwareInfo | None = None
        self._done = False  # the tag was found (or ruled out for good)

    def update(self, chunk: bytes) -> None:
        """Add the next bytes; raises FirmwareError past ``max_bytes`` or on a broken tag."""
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise FirmwareError(f"the firmware is larger than the limit of {self.max_bytes} bytes")
        self._sha.update(chunk)
        self._md5.update(chunk)
        if not self._done:
            self._scan(chunk)

    def finish(self) -> ImageDigest:
        """The digest; raises FirmwareError for an empty image or a tag that never ends."""
        if self.size == 0:
            raise FirmwareError("the firmware file is empty")
        if not self._done and self._pending.startswith(MAGIC):
            raise FirmwareError("the firmware info tag is not terminated by \\0\\0")
        return ImageDigest(self.size, self._sha.digest(), self._md5.digest(), self._info)

    def _scan(self, chunk: bytes) -> None:
        buf = self._pending + chunk
        start = buf.find(MAGIC)
        if start < 0:
            self._pending = buf[-(len(MAGIC) - 1) :]
            return
        end = buf.find(b"\0\0", start + len(MAGIC) - 1)
        if end < 0:
            if len(buf) - start > MAX_TAG_BYTES:
                raise FirmwareError(f"the firmware info tag is longer than {MAX_TAG_BYTES} bytes")
            self._pending = buf[start:]
            return
        if end - start > MAX_TAG_BYTES:
            raise FirmwareError(f"the firmware info tag is longer than {MAX_TAG_BYTES} bytes")
        self._info = parse_tag_body(buf[start + len(MAGIC) : end])
        self._done = True
        self._pending = b""


def build_tag(pairs: Mapping[str, str]) -> bytes:
    """The info tag bytes for ``pairs`` (what Blynk's ``blynk_tag.py create`` writes)."""
    body = b"".join(k.encode("ascii") + b"\0" + v.encode("ascii") + b"\0" for k, v in pairs.items())
    parse_tag_body(body[:-1] if body else b"")  # the same rules as the parser
    return MAGIC + body + b"\0"
