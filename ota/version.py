"""Firmware versions (semantic versions as firmware writes them) and build dates.

Blynk compares the ``mcu`` version of the uploaded image with the ``ver`` a device reports in
``info/mcu`` ("Lower firmware version"), or the ``build`` dates ("Earlier build date",
"Another build date"). Firmware versions are often shorter than SemVer (``1.2``, ``3``), so a
missing minor or patch counts as 0; a leading ``v`` is accepted; pre-release and build parts
follow SemVer 2.0 precedence (``1.0.0-rc.1 < 1.0.0``, build metadata is ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from ota.errors import VersionError

_VERSION = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_MAX_LEN = 64


@dataclass(frozen=True, order=False)
class FirmwareVersion:
    """A parsed version; compare with ``<``, ``==`` (build metadata is ignored)."""

    major: int
    minor: int = 0
    patch: int = 0
    pre: tuple[int | str, ...] = ()
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> FirmwareVersion:
        """Parse ``1``, ``1.2``, ``v1.2.3``, ``1.2.3-rc.1+abc``; raises VersionError."""
        if not isinstance(text, str) or len(text) > _MAX_LEN:
            raise VersionError(f"a firmware version is a string of at most {_MAX_LEN} characters")
        match = _VERSION.match(text.strip())
        if match is None:
            raise VersionError(f"{text[:_MAX_LEN]!r} is not a version like 1.2.3")
        pre: tuple[int | str, ...] = ()
        if match["pre"]:
            pre = tuple(int(p) if p.isdigit() else p for p in match["pre"].split("."))
        return cls(int(match["major"]), int(match["minor"] or 0), int(match["patch"] or 0), pre, text.strip())

    def _key(self) -> tuple[object, ...]:
        # SemVer 11: a version without pre-release ranks above the same version with one;
        # numeric identifiers rank below alphanumeric ones and compare as numbers.
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)

    def __lt__(self, other: FirmwareVersion) -> bool:
        return self._key() < other._key()

    def __le__(self, other: FirmwareVersion) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: FirmwareVersion) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: FirmwareVersion) -> bool:
        return self._key() >= other._key()

    def __str__(self) -> str:
        return self.text or f"{self.major}.{self.minor}.{self.patch}"


def try_version(text: str | None) -> FirmwareVersion | None:
    """The parsed version, or None when ``text`` is missing or not a version."""
    if not text:
        return None
    try:
        return FirmwareVersion.parse(text)
    except VersionError:
        return None


def parse_build_date(text: str) -> datetime:
    """A build date as C's ``__DATE__ " " __TIME__`` writes it (``Jan 19 2024 12:25:30``,
    ``Jan  9 2024 08:00:00``); naive, as firmware has no zone. Raises VersionError."""
    try:
        return datetime.strptime(" ".join(text.split()), "%b %d %Y %H:%M:%S")
    except (ValueError, AttributeError, TypeError):
        raise VersionError(f"{str(text)[:64]!r} is not a build date like 'Jan 19 2024 12:25:30'") from None


def try_build_date(text: str | None) -> datetime | None:
    """The parsed build date, or None."""
    if not text:
        return None
    try:
        return parse_build_date(text)
    except VersionError:
        return None
