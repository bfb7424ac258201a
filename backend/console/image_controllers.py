"""``/api/console/images``: an organization's image library (the pictures of the mobile
dashboard's image buttons): upload, list, delete, and the authenticated same-origin route that
serves an image's bytes (the console's policy loads images from its own origin only)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from sqlalchemy import RowMapping

from backend.access.guards import requires, requires_any
from backend.access.permissions import Permission as P
from backend.console.context import ConsoleServices
from backend.console.images import created_ms
from backend.console.schemas import ImageOut
from backend.numbers import is_digits

VIEW_TEMPLATES = requires(P.TEMPLATES_VIEW)
EDIT_TEMPLATES = requires(P.TEMPLATES_EDIT)
SEE_IMAGES = requires_any(P.TEMPLATES_VIEW, P.DEVICES_VIEW, P.DEVICES_VIEW_OWN)
SERVED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=86400",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
}
"""An image's bytes are kept by the user's browser only, never sniffed as another type, never
run as a document when opened alone, and not embedded by other sites."""


def image_out(row: RowMapping) -> ImageOut:
    """The wire form of an image row."""
    return ImageOut(
        int(row["id"]),
        int(row["org_id"]),
        str(row["name"]),
        str(row["content_type"]),
        int(row["size"]),
        f"/api/console/images/{row['id']}/content",
        created_ms(row["created_at"]),
    )


class ConsoleImageController(Controller):
    """Image libraries of the organizations in scope."""

    path = "/images"

    @get("/", guards=[VIEW_TEMPLATES])
    async def list_images(
        self, con: NamedDependency[ConsoleServices], org_id: FromQuery[int | None] = None
    ) -> list[ImageOut]:
        """The images of ``org_id``'s library (default: every organization in scope), newest first."""
        return [image_out(r) for r in await con.images.listed(org_id)]

    @post("/", guards=[EDIT_TEMPLATES], status_code=201, request_max_body_size=None)  # the library's own limit
    async def upload_image(
        self,
        request: Request[Any, Any, Any],
        con: NamedDependency[ConsoleServices],
        name: FromQuery[str],
        org_id: FromQuery[int | None] = None,
    ) -> ImageOut:
        """Upload a PNG, JPEG or WebP image as the raw body with its ``Content-Type``
        (``?name=pump-on.png``, ``&org_id=`` for an organization below your own)."""
        raw = request.headers.get("content-length")
        row = await con.images.upload(
            org_id,
            name,
            request.headers.get("content-type") or "",
            int(raw) if raw and is_digits(raw) else None,
            request.stream(),
        )
        return image_out(row)

    @delete("/{image_id:int}", guards=[EDIT_TEMPLATES], status_code=204)
    async def delete_image(self, image_id: FromPath[int], con: NamedDependency[ConsoleServices]) -> None:
        """Delete an image no mobile dashboard shows (409 names a template that does)."""
        await con.images.delete(image_id)

    @get("/{image_id:int}/content", guards=[SEE_IMAGES])
    async def image_content(
        self, request: Request[Any, Any, Any], image_id: FromPath[int], con: NamedDependency[ConsoleServices]
    ) -> Response[bytes]:
        """The image's bytes with its checked type, for users who may see its organization's
        templates or devices (an ETag answers a repeated request with 304)."""
        image = await con.images.content(image_id)
        etag = f'"{image.sha256}"'
        headers = {**SERVED_HEADERS, "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(b"", status_code=304, headers=headers)
        return Response(image.data, media_type=image.content_type, headers=headers)
