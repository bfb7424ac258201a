"""The per-device state machine of a shipment, with Blynk's status names.

::

    Firmware Shipment Process Started (pending)
        │ offer published (retained downlink/ota/json)
        ▼
    Request sent ──download request──► New Firmware Requested ──last byte served──► Firmware Downloaded
        │                                      │                                        │
        └──────────── info/mcu shows the new firmware ─────────────────────────────────┴──► Success
    any active status ──timeout / device reports failure──► Upload failure (offered again on the
        device's next info/mcu while attempts remain, else Download limit reached)
    any active status ──device reports type / version mismatch──► Firmware type / version mismatch
    Success ──info/mcu shows the old version again (Old → New → Old)──► Rollback

Events that do not apply to the current status are ignored (``None``): devices repeat
themselves and messages cross; only an impossible command (offering a finished device) raises.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ota.errors import TransitionError


class DeviceStatus(str, enum.Enum):
    """A device's status in a shipment; ``label`` is Blynk's name."""

    PENDING = "pending"
    REQUEST_SENT = "request_sent"
    REQUESTED = "requested"
    DOWNLOADED = "downloaded"
    SUCCESS = "success"
    UPLOAD_FAILURE = "upload_failure"
    DOWNLOAD_LIMIT = "download_limit"
    ROLLBACK = "rollback"
    TYPE_MISMATCH = "type_mismatch"
    VERSION_MISMATCH = "version_mismatch"

    @property
    def label(self) -> str:
        """Blynk's name of the status (device-shipment-statuses)."""
        return _LABELS[self]

    @property
    def active(self) -> bool:
        """The device holds an offer and the server waits for it."""
        return self in ACTIVE

    @property
    def failed(self) -> bool:
        """An attempt that ended badly (what the abort rule counts)."""
        return self in FAILED

    @property
    def final(self) -> bool:
        """Nothing more will happen for this device in this shipment, unless it asks again."""
        return self not in ACTIVE and self is not DeviceStatus.PENDING


_LABELS = {
    DeviceStatus.PENDING: "Firmware Shipment Process Started",
    DeviceStatus.REQUEST_SENT: "Request sent",
    DeviceStatus.REQUESTED: "New Firmware Requested",
    DeviceStatus.DOWNLOADED: "Firmware Downloaded",
    DeviceStatus.SUCCESS: "Success",
    DeviceStatus.UPLOAD_FAILURE: "Upload failure",
    DeviceStatus.DOWNLOAD_LIMIT: "Download limit reached",
    DeviceStatus.ROLLBACK: "Rollback",
    DeviceStatus.TYPE_MISMATCH: "Firmware type mismatch",
    DeviceStatus.VERSION_MISMATCH: "Firmware version mismatch",
}
ACTIVE = frozenset({DeviceStatus.REQUEST_SENT, DeviceStatus.REQUESTED, DeviceStatus.DOWNLOADED})
FAILED = frozenset(
    {
        DeviceStatus.UPLOAD_FAILURE,
        DeviceStatus.DOWNLOAD_LIMIT,
        DeviceStatus.ROLLBACK,
        DeviceStatus.TYPE_MISMATCH,
        DeviceStatus.VERSION_MISMATCH,
    }
)
RETRYABLE = frozenset({DeviceStatus.PENDING, DeviceStatus.UPLOAD_FAILURE})


class Report(str, enum.Enum):
    """What a device may say on ``ota/status`` (our extension; see the README)."""

    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    INSTALLING = "installing"
    FAILURE = "failure"
    TYPE_MISMATCH = "type_mismatch"
    VERSION_MISMATCH = "version_mismatch"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Offered:
    """The server published the offer (first time or again)."""


@dataclass(frozen=True)
class DownloadStarted:
    """The device asked the download URL for the image."""


@dataclass(frozen=True)
class DownloadCompleted:
    """The server sent the image's last byte to the device."""


@dataclass(frozen=True)
class McuReport:
    """The device published ``info/mcu``: is the image running, is its type the image's,
    and does it still run the version it had when the shipment started?"""

    installed: bool
    type_matches: bool
    is_origin: bool


@dataclass(frozen=True)
class DeviceReport:
    """The device published ``ota/status``."""

    report: Report


@dataclass(frozen=True)
class TimedOut:
    """The per-device timeout passed while the device was active."""


@dataclass(frozen=True)
class LimitReached:
    """The device used up its attempts (or downloads) for the period."""


Event = Offered | DownloadStarted | DownloadCompleted | McuReport | DeviceReport | TimedOut | LimitReached

_REPORTED = {
    Report.FAILURE: DeviceStatus.UPLOAD_FAILURE,
    Report.TYPE_MISMATCH: DeviceStatus.TYPE_MISMATCH,
    Report.VERSION_MISMATCH: DeviceStatus.VERSION_MISMATCH,
    Report.ROLLBACK: DeviceStatus.ROLLBACK,
}


def next_status(current: DeviceStatus, event: Event) -> DeviceStatus | None:
    """The status after ``event``, or None when the event changes nothing."""
    if isinstance(event, Offered):
        if current not in RETRYABLE:
            raise TransitionError(f"a device in {current.label!r} cannot be offered the image")
        return DeviceStatus.REQUEST_SENT
    if isinstance(event, LimitReached):
        return DeviceStatus.DOWNLOAD_LIMIT if current.active or current in RETRYABLE else None
    if current is DeviceStatus.SUCCESS:
        if isinstance(event, McuReport) and not event.installed and event.is_origin:
            return DeviceStatus.ROLLBACK
        if isinstance(event, DeviceReport) and event.report is Report.ROLLBACK:
            return DeviceStatus.ROLLBACK
        return None
    if not current.active:
        return None
    return _active(current, event)


def _active(current: DeviceStatus, event: Event) -> DeviceStatus | None:
    new: DeviceStatus | None = None
    if isinstance(event, DownloadStarted):
        new = DeviceStatus.REQUESTED if current is DeviceStatus.REQUEST_SENT else None
    elif isinstance(event, DownloadCompleted):
        new = DeviceStatus.DOWNLOADED
    elif isinstance(event, TimedOut):
        new = DeviceStatus.UPLOAD_FAILURE
    elif isinstance(event, McuReport):
        if event.installed:
            new = DeviceStatus.SUCCESS
        elif not event.type_matches:
            new = DeviceStatus.TYPE_MISMATCH
        elif not event.is_origin:
            new = DeviceStatus.VERSION_MISMATCH
    elif isinstance(event, DeviceReport):
        if event.report in _REPORTED:
            new = _REPORTED[event.report]
        elif event.report is Report.DOWNLOADING:
            new = DeviceStatus.REQUESTED if current is DeviceStatus.REQUEST_SENT else None
        else:  # downloaded / installing
            new = DeviceStatus.DOWNLOADED
    return None if new is current else new
