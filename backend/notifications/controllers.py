"""The bell's JSON routes under ``/api/console/notifications`` (thin: one inbox call each).
Any signed-in user may call them, about their own notifications only."""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from backend.access.guards import signed_in
from backend.access.paging import Page, page_args
from backend.notifications.inbox import Inbox
from backend.notifications.schemas import MarkedOut, NotificationOut, PrefsIn, PrefsOut, UnreadOut


class NotificationController(Controller):
    """The signed-in user's notifications and preferences."""

    path = "/notifications"
    guards = [signed_in]

    @get("/")
    async def list_notifications(
        self,
        inbox: NamedDependency[Inbox],
        page: FromQuery[int] = 0,
        size: FromQuery[int] = 20,
        unread: FromQuery[bool] = False,
    ) -> Page[NotificationOut]:
        """The user's notifications, newest first (``unread=true``: the unread ones only)."""
        page, size = page_args(page, size)
        items, total = await inbox.page(page, size, unread_only=unread)
        return Page(items, total, page, size)

    @get("/unread")
    async def unread(self, inbox: NamedDependency[Inbox]) -> UnreadOut:
        """How many of the user's notifications are unread (the bell's count)."""
        return UnreadOut(await inbox.unread())

    @post("/{notification_id:int}/read", status_code=HTTP_200_OK)
    async def mark_read(self, inbox: NamedDependency[Inbox], notification_id: FromPath[int]) -> MarkedOut:
        """Mark one notification read."""
        marked = await inbox.mark_read(notification_id)
        return MarkedOut(marked, await inbox.unread())

    @post("/read-all", status_code=HTTP_200_OK)
    async def mark_all_read(self, inbox: NamedDependency[Inbox]) -> MarkedOut:
        """Mark every notification of the user read."""
        return MarkedOut(await inbox.mark_all_read(), 0)

    @get("/preferences")
    async def preferences(self, inbox: NamedDependency[Inbox]) -> PrefsOut:
        """The user's notification preferences."""
        return await inbox.prefs()

    @put("/preferences")
    async def set_preferences(self, inbox: NamedDependency[Inbox], data: JSONBody[PrefsIn]) -> PrefsOut:
        """Change the user's notification preferences."""
        return await inbox.set_prefs(data)
