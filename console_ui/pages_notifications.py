"""The notifications page: the signed-in user's notifications (newest first, mark read) and
their notification preferences. Changes go through ``/api/console/notifications``."""

from __future__ import annotations

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template as Page

from backend.access.guards import signed_in
from backend.access.paging import page_args
from backend.notifications.inbox import Inbox
from console_ui.render import page

PAGE_SIZE = 50


@get("/notifications", guards=[signed_in])
async def notifications_page(
    request: Request,  # type: ignore[type-arg]
    inbox: NamedDependency[Inbox],
    page_number: FromQuery[int] = 0,
) -> Page:
    """The user's notifications and preferences."""
    number, size = page_args(page_number, PAGE_SIZE)
    items, total = await inbox.page(number, size)
    return page(
        request,
        "notifications.html",
        notifications=items,
        total=total,
        page_number=number,
        pages=max(1, -(-total // size)),
        unread=await inbox.unread(),
        prefs=await inbox.prefs(),
    )


ROUTES = [notifications_page]
