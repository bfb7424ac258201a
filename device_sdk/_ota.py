"""The OTA agent: Blynk.Air offers in, verified firmware images out.

An offer arrives on ``downlink/ota/json`` (retained, so also right after connecting). The
agent checks the firmware type and that the offered version is newer, downloads the image
over HTTP(S) with ``Range`` resume, verifies its SHA-256 and the server's Ed25519 signature
against the pinned public key, then hands it to the application's ``install`` callback. The
default callback keeps the image in ``directory`` and reconnects reporting the new version in
``info/mcu``, which is how the server learns of the success. Progress and refusals are
reported on ``ota/status`` as ``{"status": ..., "bytes": N, "error": "..."}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import logging
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._downlinks import Downlink
from ._exceptions import DeviceError

if TYPE_CHECKING:
    from ._device import Device

logger = logging.getLogger("device_sdk")

OTA_TOPIC = "downlink/ota/json"
STATUS_TOPIC = "ota/status"
SIGNATURE_SCHEME = "openblynk-fw-v1"
_CHUNK = 16 * 1024
_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


class FirmwareRejectedError(DeviceError):
    """An offer or image the agent refused (``status`` is the ``ota/status`` code sent)."""

    def __init__(self, message: str, status: str = "failure") -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FirmwareOffer:
    """A parsed ``downlink/ota/json`` offer.

    Attributes:
        url: Where to download the image (carries a per-device token).
        size: The image size in bytes.
        fw_type: The firmware type (``type``), if the server read one from the image.
        version: The firmware version (``ver``), if known.
        build: The build date (``build``), if known.
        sha256: The image's SHA-256 (32 bytes).
        signature: The server's Ed25519 signature (64 bytes).
    """

    url: str
    size: int
    fw_type: str | None
    version: str | None
    build: str | None
    sha256: bytes
    signature: bytes

    @classmethod
    def parse(cls, payload: bytes) -> FirmwareOffer:
        """Parse an offer.

        Args:
            payload: The ``downlink/ota/json`` message.

        Raises:
            FirmwareRejectedError: The offer is malformed or lacks ``sha256``/``sig``.
        """
        try:
            doc: Any = json.loads(payload)
            url, size = doc["url"], doc["size"]
            sha256, signature = bytes.fromhex(doc["sha256"]), base64.b64decode(doc["sig"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise FirmwareRejectedError(f"malformed offer: {exc!r}") from None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise FirmwareRejectedError("the offer's url is not http(s)")
        if not isinstance(size, int) or size <= 0 or len(sha256) != 32 or len(signature) != 64:
            raise FirmwareRejectedError("the offer's size, sha256 or sig is malformed")
        return cls(url, size, _opt(doc, "type"), _opt(doc, "ver"), _opt(doc, "build"), sha256, signature)

    def signed_message(self) -> bytes:
        """The bytes the server signed (see the README, "Blynk.Air")."""
        doc = [SIGNATURE_SCHEME, self.sha256.hex(), self.size, self.fw_type or "", self.version or ""]
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class FirmwareImage:
    """A downloaded, verified image handed to the ``install`` callback.

    Attributes:
        offer: The offer it came from.
        path: The file holding the image (the callback may move it).
    """

    offer: FirmwareOffer
    path: Path


def version_key(text: str) -> tuple[Any, ...] | None:
    """A sort key for a firmware version (SemVer precedence; ``1.2`` = ``1.2.0``), or None."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    pre = match[4]
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return (int(match[1]), int(match[2] or 0), int(match[3] or 0), 0 if pre else 1, parts)


class OtaAgent:
    """Takes Blynk.Air offers for one :class:`Device`.

    Args:
        device: The device (its ``firmware_type`` and ``firmware_version`` are checked).
        public_key: The server's Ed25519 public key (32 raw bytes, or base64 of them), as
            served at ``/api/ota/signing-key``.
        directory: Where images are downloaded and (by the default ``install``) kept.
        install: Called with each verified :class:`FirmwareImage` on a worker thread. Raise
            to report a failure. Default: keep the image, report its version via
            :meth:`Device.set_firmware` and :meth:`Device.reconnect`.
        executor: Runs downloads (share one among many devices); default: a thread per offer.
        timeout: Socket timeout of each HTTP request, in seconds.
        resumes: How many times a broken download is resumed before it fails.

    Raises:
        ValueError: If ``public_key`` is not an Ed25519 public key.
    """

    def __init__(
        self,
        device: Device,
        public_key: bytes | str,
        *,
        directory: str | os.PathLike[str] | None = None,
        install: Callable[[FirmwareImage], object] | None = None,
        executor: Executor | None = None,
        timeout: float = 30.0,
        resumes: int = 5,
    ) -> None:
        raw = base64.b64decode(public_key, validate=True) if isinstance(public_key, str) else public_key
        self._key = Ed25519PublicKey.from_public_bytes(raw)
        self._device = device
        self._dir = Path(directory) if directory is not None else Path(tempfile.gettempdir()) / "device_sdk_ota"
        self._install = install or self._default_install
        self._executor = executor
        self._timeout = timeout
        self._resumes = resumes
        self._lock = threading.Lock()
        self._busy: bytes | None = None  # sha256 of the offer being handled
        self._installed: bytes | None = None  # sha256 of the last image installed
        self.last_error: str | None = None
        """The reason of the last refused offer or failed update, if any."""
        device.on_downlink(self._on_downlink)

    def _on_downlink(self, downlink: Downlink) -> None:
        if downlink.topic != OTA_TOPIC or not downlink.payload:
            return  # empty: the server withdrew its offer
        try:
            offer = FirmwareOffer.parse(downlink.payload)
        except FirmwareRejectedError as exc:
            self._refuse(exc)
            return
        with self._lock:
            if offer.sha256 in (self._busy, self._installed):
                # The same offer again: it is retained until the server withdraws it, so it
                # comes back on every connection, also the one that reports its success.
                return
        try:
            self._check(offer)
        except FirmwareRejectedError as exc:
            self._refuse(exc)
            return
        with self._lock:
            if self._busy is not None:
                return  # one update at a time
            self._busy = offer.sha256
        if self._executor is not None:
            self._executor.submit(self._update, offer)
        else:
            threading.Thread(target=self._update, args=(offer,), name="device_sdk ota", daemon=True).start()

    def _check(self, offer: FirmwareOffer) -> None:
        mine = self._device.firmware_type
        if offer.fw_type and mine and offer.fw_type != mine:
            raise FirmwareRejectedError(f"firmware type {offer.fw_type} is not {mine}", "type_mismatch")
        if offer.version:
            new, now = version_key(offer.version), version_key(self._device.firmware_version)
            if new is not None and now is not None and new <= now:
                raise FirmwareRejectedError(
                    f"version {offer.version} is not newer than {self._device.firmware_version}", "version_mismatch"
                )

    def _update(self, offer: FirmwareOffer) -> None:
        installed = False
        try:
            path = self.download(offer)
            self._report("installing", offer.size)
            self._install(FirmwareImage(offer, path))
            installed = True
        except FirmwareRejectedError as exc:
            self._refuse(exc)
        except Exception as exc:  # the install callback failed
            logger.exception("firmware install failed")
            self._refuse(FirmwareRejectedError(f"install failed: {exc}"))
        finally:
            with self._lock:
                self._busy = None
                if installed:
                    self._installed = offer.sha256

    def download(self, offer: FirmwareOffer) -> Path:
        """Download ``offer`` (resuming a partial file) and verify it; the image's path.

        Args:
            offer: The offer to fetch.

        Raises:
            FirmwareRejectedError: The download failed, or the hash or signature is wrong.
        """
        self._dir.mkdir(parents=True, exist_ok=True)
        part = self._dir / f"{offer.sha256.hex()}.part"
        self._report("downloading", part.stat().st_size if part.exists() else 0)
        for attempt in range(self._resumes + 1):
            try:
                self._fetch(offer, part)
                break
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, urllib.error.HTTPError) and exc.code in (403, 404, 410):
                    raise FirmwareRejectedError(f"download refused: HTTP {exc.code}") from None
                if attempt == self._resumes:
                    raise FirmwareRejectedError(f"download failed: {exc}") from None
                logger.info("download broke at %d bytes (%s); resuming", part.stat().st_size, exc)
                time.sleep(min(2.0, 0.2 * (attempt + 1)))
        self._report("downloaded", offer.size)
        return self.verify(offer, part)

    def _fetch(self, offer: FirmwareOffer, part: Path) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have >= offer.size:
            return
        request = urllib.request.Request(offer.url, headers={"Range": f"bytes={have}-"} if have else {})
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            header = response.headers.get("x-sha256")
            if header and header != base64.b64encode(offer.sha256).decode():
                raise FirmwareRejectedError("the server's x-sha256 does not match the offer")
            mode = "ab" if have and response.status == 206 else "wb"
            with open(part, mode) as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
        if part.stat().st_size < offer.size:
            raise http.client.IncompleteRead(b"", offer.size - part.stat().st_size)

    def verify(self, offer: FirmwareOffer, path: Path) -> Path:
        """Check an image file against the offer's SHA-256 and the pinned key's signature;
        the file is deleted when it fails.

        Args:
            offer: The offer the image must match.
            path: The downloaded file.

        Raises:
            FirmwareRejectedError: The size, hash or signature is wrong.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 16):
                digest.update(chunk)
        try:
            if path.stat().st_size != offer.size or digest.digest() != offer.sha256:
                raise FirmwareRejectedError("the image's SHA-256 does not match the offer")
            try:
                self._key.verify(offer.signature, offer.signed_message())
            except InvalidSignature:
                raise FirmwareRejectedError("the image is not signed by the pinned server key") from None
        except FirmwareRejectedError:
            path.unlink(missing_ok=True)
            raise
        return path

    def _default_install(self, image: FirmwareImage) -> None:
        version = image.offer.version or self._device.firmware_version
        target = self._dir / f"firmware-{image.offer.sha256.hex()[:16]}.bin"
        os.replace(image.path, target)
        self._device.set_firmware(version, image.offer.build)
        self._device.reconnect()

    def _refuse(self, exc: FirmwareRejectedError) -> None:
        self.last_error = str(exc)
        logger.warning("firmware update refused: %s", exc)
        self._report(exc.status, None, str(exc))

    def _report(self, status: str, count: int | None, error: str | None = None) -> None:
        doc: dict[str, Any] = {"status": status}
        if count is not None:
            doc["bytes"] = count
        if error:
            doc["error"] = error[:200]
        try:
            self._device._link.publish(STATUS_TOPIC, json.dumps(doc).encode())
        except DeviceError as exc:
            logger.info("ota/status not sent: %s", exc)


def _opt(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return None if value is None else str(value)
