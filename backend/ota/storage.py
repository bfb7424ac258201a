"""Where Blynk.Air keeps its files: firmware images by SHA-256, and the signing key.

Images live at ``<data_dir>/firmware/<sha256 hex>``: an upload is streamed to a temporary file
in the same directory while it is hashed, then renamed into place (so the same image uploaded
twice, or by two organizations, is stored once). The signing key is a PEM file
``<data_dir>/ota-signing-key.pem`` (mode 0600), created on first start.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from backend.errors import StorageFullError, disk_full
from ota import ImageDigest, ImageScanner

log = logging.getLogger(__name__)
_SHA_HEX = re.compile(r"^[0-9a-f]{64}$")


class FileKeyStore:
    """:class:`ota.KeyStore` on a file; a concurrent first start keeps the first key written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> bytes | None:
        """The PEM, or None when no key exists yet."""
        return self.path.read_bytes() if self.path.exists() else None

    def save_new(self, pem: bytes) -> bytes:
        """Write ``pem`` unless another process already did; the key on disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.path.read_bytes()
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return pem


class FirmwareFiles:
    """The image directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, sha256_hex: str) -> Path:
        """Where the image with this SHA-256 is stored."""
        if not _SHA_HEX.match(sha256_hex):
            raise ValueError("not a SHA-256 hex digest")
        return self.dir / sha256_hex

    async def receive(self, body: AsyncIterator[bytes], max_bytes: int) -> tuple[Path, ImageDigest]:
        """Stream ``body`` to a temporary file while hashing it; raises FirmwareError, or
        StorageFullError when the disk is full (the temporary file is removed then)."""
        tmp = self.dir / f".upload-{secrets.token_hex(8)}"
        scanner = ImageScanner(max_bytes)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                async for chunk in body:
                    if chunk:
                        scanner.update(chunk)
                        out.write(chunk)
            return tmp, scanner.finish()
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if disk_full(exc):
                log.warning("disk full: a firmware upload to %s was refused (%s)", self.dir, exc)
                raise StorageFullError("the firmware image") from None
            raise

    def keep(self, tmp: Path, digest: ImageDigest) -> Path:
        """Move a received image into place (or drop it when that image is already stored)."""
        final = self.path(digest.sha256_hex)
        if final.exists() and final.stat().st_size == digest.size:
            tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, final)
        return final

    def remove(self, sha256_hex: str) -> None:
        """Delete a stored image (when no firmware record uses it any more)."""
        self.path(sha256_hex).unlink(missing_ok=True)
