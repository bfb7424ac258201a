"""An organization's image library: the pictures of the mobile dashboard's image buttons
(Blynk's Image Button shows one image for off and one for on).

The console's Content-Security-Policy loads images from its own origin only (``img-src
'self'``), so images are uploaded here and served back from an authenticated route of the same
origin. What is kept:

- PNG, JPEG or WebP only, told by the file's first bytes (:func:`sniff`); the type the uploader
  declares must agree, and SVG (a document that can carry script) is refused outright;
- at most ``ImageLimits.max_bytes`` each (refused as soon as the body passes it) and
  ``ImageLimits.per_org`` per organization (an identical file already there is answered as it
  is, and counts once);
- in the database (``console_image``), so every app replica serves them and a backup holds them.

Who sees what: the library of an organization is listed, added to and pruned by users whose
scope holds it (``templates.view`` / ``templates.edit``); an image is served to a user whose
scope holds its organization or whose own organization is below it, as a device may use its
organization's templates and those of the organizations above (so a customer's app shows the
manufacturer's image buttons). Another tenant's image is answered as missing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope, ancestry
from backend.audit.services import AuditService
from backend.db.sql import execute, fetch_all, fetch_one
from backend.errors import ConflictError, NotFoundError, ValidationError

TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}
"""The image types the library keeps, with their names for messages."""
UNDECLARED = frozenset({"", "application/octet-stream"})
"""Content types that say nothing: the file's first bytes alone tell its type."""
_LOCK = 0x1A6E  # pg_advisory_xact_lock(_LOCK, org): one upload at a time per organization
_NAME_JUNK = re.compile(r"[\x00-\x1f\x7f]+")
_COLUMNS = "id, org_id, name, content_type, size, sha256, created_at"


def sniff(head: bytes) -> str | None:
    """The image type the first bytes of a file say it is (PNG, JPEG or WebP), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _looks_like_svg(declared: str, head: bytes) -> bool:
    text = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return "svg" in declared or text.startswith((b"<?xml", b"<svg", b"<!doctype svg", b"<!--"))


def check_image(declared: str, data: bytes) -> str:
    """The content type of ``data`` when it is an image the library keeps and ``declared`` (the
    uploader's ``Content-Type``; none or ``application/octet-stream`` declares nothing) agrees;
    raises ValidationError saying why not."""
    declared = declared.split(";", 1)[0].strip().lower()
    if _looks_like_svg(declared, data):
        raise ValidationError("SVG images are refused (they can carry script): upload a PNG, JPEG or WebP image")
    if declared in UNDECLARED:
        found = sniff(data)
        if found is None:
            raise ValidationError("the file is not a PNG, JPEG or WebP image: its first bytes are not an image's")
        return found
    if declared not in TYPES:
        raise ValidationError(
            f"an image must be PNG, JPEG or WebP (Content-Type image/png, image/jpeg or image/webp), not {declared!r}"
        )
    found = sniff(data)
    if found is None:
        raise ValidationError(f"the file is not a {TYPES[declared]} image: its first bytes are not an image's")
    if found != declared:
        raise ValidationError(f"the file is a {TYPES[found]} image, not the {TYPES[declared]} its Content-Type says")
    return found


def clean_name(name: str) -> str:
    """An image's name as shown in the editor: without control characters, at most 100 characters."""
    cleaned = _NAME_JUNK.sub(" ", name).strip()[:100]
    if not cleaned:
        raise ValidationError("an image needs a name (?name=pump-on.png)")
    return cleaned


@dataclass(frozen=True)
class ImageLimits:
    """How large an image may be and how many an organization keeps."""

    max_bytes: int = 512 * 1024
    per_org: int = 100


@dataclass(frozen=True)
class ImageFile:
    """An image's bytes, as served."""

    content_type: str
    data: bytes
    sha256: str


async def read_limited(body: AsyncIterator[bytes], content_length: int | None, max_bytes: int) -> bytes:
    """The whole body, refused (ValidationError) as soon as it is known to pass ``max_bytes``."""
    too_large = f"the image is larger than the limit of {max_bytes} bytes"
    if content_length is not None and content_length > max_bytes:
        raise ValidationError(too_large)
    parts: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > max_bytes:
            raise ValidationError(too_large)
        parts.append(chunk)
    if not size:
        raise ValidationError("the image is empty")
    return b"".join(parts)


class ImageLibrary:
    """The image libraries of the organizations in one principal's scope."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, limits: ImageLimits) -> None:
        self.session = session
        self.scope = scope
        self.audit = audit
        self.limits = limits

    async def listed(self, org_id: int | None) -> list[RowMapping]:
        """The images of ``org_id`` (it must be in scope), or of every organization in scope; newest first."""
        if org_id is not None:
            await self.scope.require_org(org_id)
        orgs = [org_id] if org_id is not None else sorted(await self.scope.org_ids())
        return await fetch_all(
            self.session,
            f"SELECT {_COLUMNS} FROM console_image WHERE org_id = ANY(:orgs) ORDER BY created_at DESC, id DESC",
            orgs=orgs,
        )

    async def upload(
        self, org_id: int | None, name: str, declared: str, content_length: int | None, body: AsyncIterator[bytes]
    ) -> RowMapping:
        """Keep an image in an organization's library (the caller's by default); an identical
        image already there is answered as it is."""
        org = org_id if org_id is not None else self.scope.principal.org_id
        await self.scope.require_org(org)
        label = clean_name(name)
        data = await read_limited(body, content_length, self.limits.max_bytes)
        content_type = check_image(declared, data)
        digest = hashlib.sha256(data).hexdigest()
        await execute(self.session, "SELECT pg_advisory_xact_lock(:lock, CAST(:org AS int))", lock=_LOCK, org=org)
        same = await fetch_one(
            self.session, f"SELECT {_COLUMNS} FROM console_image WHERE org_id = :o AND sha256 = :s", o=org, s=digest
        )
        if same is not None:
            return same
        count = await fetch_one(self.session, "SELECT count(*) AS n FROM console_image WHERE org_id = :o", o=org)
        if count is not None and int(count["n"]) >= self.limits.per_org:
            raise ValidationError(
                f"this organization's image library is full ({self.limits.per_org} images): delete one first"
            )
        row = await fetch_one(
            self.session,
            f"""INSERT INTO console_image (org_id, name, content_type, size, sha256, data, created_by)
                VALUES (:o, :n, :t, :z, :s, :d, :u) RETURNING {_COLUMNS}""",
            o=org,
            n=label,
            t=content_type,
            z=len(data),
            s=digest,
            d=data,
            u=self.scope.principal.user_id or None,
        )
        assert row is not None
        await self.audit.record(self.scope.principal, org, "image.upload", "image", row["id"], name=label)
        return row

    async def delete(self, image_id: int) -> None:
        """Remove an image no mobile dashboard shows (ConflictError names a template that does)."""
        row = await self._own(image_id)
        user = await fetch_one(
            self.session,
            """SELECT t.name FROM template_mobile_dashboard d JOIN template t ON t.id = d.template_id
               WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(d.widgets) w
                             WHERE w->>'on_image' = :i OR w->>'off_image' = :i)
               ORDER BY t.name LIMIT 1""",
            i=str(image_id),
        )
        if user is not None:
            raise ConflictError(
                f"template {user['name']!r} shows this image on its mobile dashboard: change that first"
            )
        await execute(self.session, "DELETE FROM console_image WHERE id = :i", i=image_id)
        await self.audit.record(
            self.scope.principal, row["org_id"], "image.delete", "image", image_id, name=row["name"]
        )

    async def content(self, image_id: int) -> ImageFile:
        """An image's bytes, for a user whose scope holds its organization or whose organization
        is below it; others are answered as missing."""
        row = await fetch_one(
            self.session, "SELECT org_id, content_type, data, sha256 FROM console_image WHERE id = :i", i=image_id
        )
        if row is None:
            raise NotFoundError("image not found")
        org = int(row["org_id"])
        if org not in await self.scope.org_ids() and org not in await ancestry(
            self.session, self.scope.principal.org_id
        ):
            raise NotFoundError("image not found")
        return ImageFile(str(row["content_type"]), bytes(row["data"]), str(row["sha256"]))

    async def _own(self, image_id: int) -> RowMapping:
        row = await fetch_one(self.session, f"SELECT {_COLUMNS} FROM console_image WHERE id = :i", i=image_id)
        if row is None or int(row["org_id"]) not in await self.scope.org_ids():
            raise NotFoundError("image not found")
        return row


def created_ms(at: datetime) -> int:
    """Epoch milliseconds, as the console's other times."""
    return int(at.timestamp() * 1000)
