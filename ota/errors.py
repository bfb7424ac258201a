"""The exception tree of :mod:`ota` (drawn in the package docstring)."""

from __future__ import annotations


class OtaError(Exception):
    """Root of every error :mod:`ota` raises on purpose; ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FirmwareError(OtaError):
    """A firmware image that cannot be used (empty, too large, a malformed info tag)."""


class VersionError(OtaError):
    """A firmware version or build date that cannot be parsed."""


class SignatureError(OtaError):
    """A signature or public key that does not verify or cannot be read."""


class RuleError(OtaError):
    """A shipment setting that breaks a rule (pacing, abort rule, window, attempts, target)."""


class TransitionError(OtaError):
    """A per-device status change the state machine does not allow."""
