"""Who gets an update and when: apply modes, targets, preferred time, attempts.

Apply modes (Blynk's "Apply update if the device has"):

* ``lower_version``: the device's version is lower than the image's (semantic versions);
* ``earlier_build``: the device's build date is earlier than the image's;
* ``another_build``: the device's build date differs from the image's.

A device whose firmware type differs from the image's type never gets it ("Firmware type
mismatch"); one that fails the apply mode gets "Firmware version mismatch". Preferred time is
one of Blynk's windows, evaluated in each device's own time zone.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from ota.errors import RuleError
from ota.image import FirmwareInfo
from ota.version import try_build_date, try_version


class ApplyMode(str, enum.Enum):
    """When a device needs the image."""

    LOWER_VERSION = "lower_version"
    EARLIER_BUILD = "earlier_build"
    ANOTHER_BUILD = "another_build"


class Verdict(str, enum.Enum):
    """What the apply rules say about one device."""

    UPDATE = "update"
    TYPE_MISMATCH = "type_mismatch"
    VERSION_MISMATCH = "version_mismatch"


@dataclass(frozen=True)
class DeviceFirmware:
    """What a device last reported in ``info/mcu``."""

    version: str | None
    fw_type: str | None
    build: str | None


def verdict(mode: ApplyMode, image: FirmwareInfo | None, device: DeviceFirmware) -> Verdict:
    """Whether ``device`` should get ``image`` under ``mode``."""
    image = image or FirmwareInfo()
    if image.fw_type and device.fw_type and image.fw_type != device.fw_type:
        return Verdict.TYPE_MISMATCH
    if mode is ApplyMode.LOWER_VERSION:
        new, old = try_version(image.version), try_version(device.version)
        if new is None:
            raise RuleError("'lower_version' needs an image whose info tag names its version (mcu)")
        return Verdict.UPDATE if old is None or old < new else Verdict.VERSION_MISMATCH
    new_build, old_build = try_build_date(image.build), try_build_date(device.build)
    if new_build is None:
        raise RuleError(f"{mode.value!r} needs an image whose info tag names its build date")
    if old_build is None:
        return Verdict.UPDATE
    wanted = old_build < new_build if mode is ApplyMode.EARLIER_BUILD else old_build != new_build
    return Verdict.UPDATE if wanted else Verdict.VERSION_MISMATCH


def check_mode(mode: ApplyMode, image: FirmwareInfo | None) -> None:
    """Refuse a mode the image cannot support (no version, or no build date, in its tag)."""
    verdict(mode, image, DeviceFirmware(None, None, None))


def is_installed(image: FirmwareInfo | None, reported: DeviceFirmware) -> bool:
    """Whether a device's ``info/mcu`` shows the image running (version, else build, matches)."""
    image = image or FirmwareInfo()
    if image.version and reported.version:
        new, now = try_version(image.version), try_version(reported.version)
        return new == now if new is not None and now is not None else image.version == reported.version
    if image.build and reported.build:
        return try_build_date(image.build) == try_build_date(reported.build)
    return False


class PreferredTime(str, enum.Enum):
    """Blynk's preferred-time windows, in the device's local time."""

    ANY = "any"
    NIGHT = "night"  # 00:00 - 06:00
    MORNING = "morning"  # 06:00 - 12:00
    AFTERNOON = "afternoon"  # 12:00 - 18:00
    EVENING = "evening"  # 18:00 - 24:00

    def allows(self, now: datetime, zone: tzinfo) -> bool:
        """Whether ``now`` (aware) falls in this window in ``zone``."""
        if now.tzinfo is None:
            raise RuleError("the time must carry its zone")
        if self is PreferredTime.ANY:
            return True
        start = {
            PreferredTime.NIGHT: 0,
            PreferredTime.MORNING: 6,
            PreferredTime.AFTERNOON: 12,
            PreferredTime.EVENING: 18,
        }[self]
        local = now.astimezone(zone).time()
        return time(start) <= local < (time(start + 6) if start < 18 else time.max)


@dataclass(frozen=True)
class AttemptsLimit:
    """At most ``count`` attempts in any ``period`` (Blynk: 3 per 24 h)."""

    count: int = 3
    period: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 100:
            raise RuleError("the attempts limit must be within 1..100")
        if not timedelta(minutes=1) <= self.period <= timedelta(days=30):
            raise RuleError("the attempts reset period must be between 1 minute and 30 days")

    def allows(self, earlier: Sequence[datetime], now: datetime) -> bool:
        """Whether one more attempt may start at ``now`` given the earlier attempts' times."""
        return sum(1 for at in earlier if now - at < self.period) < self.count

    def recent(self, earlier: Sequence[datetime], now: datetime) -> list[datetime]:
        """The attempts still inside the period (what is worth keeping)."""
        return [at for at in earlier if now - at < self.period]


class TargetKind(str, enum.Enum):
    """How a shipment picks its devices."""

    TEMPLATE = "template"  # every current and future device of a template
    DEVICES = "devices"  # a fixed list of devices
    ORG = "org"  # every device of an organization and its sub-organizations
    TAG = "tag"  # every device carrying a tag


@dataclass(frozen=True)
class Target:
    """A shipment's target; ``value`` is a template id, org id, tag, or device ids."""

    kind: TargetKind
    template_id: int | None = None
    org_id: int | None = None
    tag: str | None = None
    device_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        kind = self.kind
        if kind is TargetKind.TEMPLATE and self.template_id is None:
            raise RuleError("a template target names template_id")
        if kind is TargetKind.ORG and self.org_id is None:
            raise RuleError("an organization target names org_id")
        if kind is TargetKind.TAG and not (self.tag and 0 < len(self.tag) <= 64):
            raise RuleError("a tag target names a tag of 1..64 characters")
        if kind is TargetKind.DEVICES and not 0 < len(self.device_ids) <= 100_000:
            raise RuleError("a devices target lists 1..100000 device ids")
        if kind is TargetKind.DEVICES and len(set(self.device_ids)) != len(self.device_ids):
            raise RuleError("a devices target lists each device once")

    @property
    def open_ended(self) -> bool:
        """True when devices created later join (template, organization and tag targets)."""
        return self.kind is not TargetKind.DEVICES

    def matches(self, device_id: int, template_id: int, org_path: Sequence[int], tags: Sequence[str]) -> bool:
        """Whether a device (its template, its organization and that one's ancestors, its tags)
        is targeted."""
        if self.kind is TargetKind.TEMPLATE:
            return template_id == self.template_id
        if self.kind is TargetKind.ORG:
            return self.org_id in org_path
        if self.kind is TargetKind.TAG:
            return self.tag in tags
        return device_id in self.device_ids


@dataclass(frozen=True)
class DeviceTimeout:
    """How long a device may stay active (offered, downloading, installing) before its
    attempt counts as failed."""

    seconds: int = 600

    def __post_init__(self) -> None:
        if not 10 <= self.seconds <= 7 * 86400:
            raise RuleError("the per-device timeout must be between 10 seconds and 7 days")

    def expired(self, offered_at: datetime, now: datetime) -> bool:
        """Whether an attempt offered at ``offered_at`` has run out of time at ``now``."""
        return now - offered_at >= timedelta(seconds=self.seconds)
