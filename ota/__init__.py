"""Blynk.Air, the pure domain: firmware images (info tag, hashes, Ed25519 signatures),
versions and build dates, apply rules and targets, pacing and the abort rule, and the
per-device state machine with Blynk's status names.

Depends on the standard library and ``cryptography`` only; storage comes in through the
protocols defined here (:class:`ota.signing.KeyStore`). Nothing here does I/O of its own.

Exceptions::

    OtaError                 (message is safe to show)
    ├── FirmwareError        an image that cannot be used (empty, too large, broken info tag)
    ├── VersionError         a version or build date that cannot be parsed
    ├── SignatureError       a signature or key that does not verify or cannot be read
    ├── RuleError            a shipment setting that breaks a rule
    └── TransitionError      a status change the state machine does not allow
"""

from ota.errors import FirmwareError, OtaError, RuleError, SignatureError, TransitionError, VersionError
from ota.image import FirmwareInfo, ImageDigest, ImageScanner, build_tag, find_info
from ota.pacing import AbortRule, ConstantPacing, ExponentialPacing, Pacing, Progress, abort_from_dict, pacing_from_dict
from ota.rules import (
    ApplyMode,
    AttemptsLimit,
    DeviceFirmware,
    DeviceTimeout,
    PreferredTime,
    Target,
    TargetKind,
    Verdict,
    check_mode,
    is_installed,
    verdict,
)
from ota.signing import KeyStore, Signer, signed_message, verify
from ota.states import DeviceStatus, Report, next_status
from ota.tokens import DownloadGrant, DownloadTokens
from ota.version import FirmwareVersion, parse_build_date

__all__ = [
    "AbortRule",
    "ApplyMode",
    "AttemptsLimit",
    "ConstantPacing",
    "DeviceFirmware",
    "DeviceStatus",
    "DeviceTimeout",
    "DownloadGrant",
    "DownloadTokens",
    "ExponentialPacing",
    "FirmwareError",
    "FirmwareInfo",
    "FirmwareVersion",
    "ImageDigest",
    "ImageScanner",
    "KeyStore",
    "OtaError",
    "Pacing",
    "PreferredTime",
    "Progress",
    "Report",
    "RuleError",
    "SignatureError",
    "Signer",
    "Target",
    "TargetKind",
    "TransitionError",
    "Verdict",
    "VersionError",
    "abort_from_dict",
    "build_tag",
    "check_mode",
    "find_info",
    "is_installed",
    "next_status",
    "pacing_from_dict",
    "parse_build_date",
    "signed_message",
    "verdict",
    "verify",
]
