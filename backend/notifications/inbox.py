"""A user's own notifications and preferences, in a request's transaction.

Every query is bounded by the signed-in user's id: nobody reads, counts or marks another
user's notifications (an id that is not the caller's answers ``NotFoundError``, as one that
does not exist). Platform API clients have no inbox (their ``user_id`` is 0).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.db.changes import Change, notify
from backend.db.sql import execute
from backend.errors import NotFoundError, PermissionDeniedError
from backend.notifications.models import Notification, NotificationPref
from backend.notifications.schemas import NotificationOut, PrefsIn, PrefsOut


def notification_out(n: Notification) -> NotificationOut:
    """The wire form of a notification row."""
    assert n.id is not None and n.created_at is not None
    return NotificationOut(n.id, n.title, n.body, n.level, n.device_id, n.source, n.source_id, n.created_at, n.read_at)


class Inbox:
    """The signed-in user's notifications and preferences."""

    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        if not principal.user_id:
            raise PermissionDeniedError("notifications belong to users; an API client has none")
        self.session = session
        self.user_id = principal.user_id

    async def unread(self) -> int:
        """How many of the user's notifications are unread."""
        query = select(func.count()).where(Notification.user_id == self.user_id, col(Notification.read_at).is_(None))
        return int((await self.session.exec(query)).one())

    async def page(self, page: int, size: int, unread_only: bool = False) -> tuple[list[NotificationOut], int]:
        """A page of the user's notifications, newest first, and how many there are."""
        where: list[ColumnElement[bool]] = [col(Notification.user_id) == self.user_id]
        if unread_only:
            where.append(col(Notification.read_at).is_(None))
        total = int((await self.session.exec(select(func.count()).where(*where))).one())
        rows = await self.session.exec(
            select(Notification).where(*where).order_by(col(Notification.id).desc()).offset(page * size).limit(size)
        )
        return [notification_out(n) for n in rows.all()], total

    async def mark_read(self, notification_id: int) -> int:
        """Mark one of the user's notifications read (again is fine); how many were newly read."""
        row = await self.session.get(Notification, notification_id)
        if row is None or row.user_id != self.user_id:
            raise NotFoundError(f"no notification {notification_id}")
        if row.read_at is not None:
            return 0
        row.read_at = datetime.now(UTC)
        self.session.add(row)
        await self.session.flush()
        await notify(self.session, Change("notice", self.user_id))  # the user's other open pages
        return 1

    async def mark_all_read(self) -> int:
        """Mark every unread notification of the user read; how many were."""
        marked = await execute(
            self.session,
            "UPDATE notification SET read_at = now() WHERE user_id = :user AND read_at IS NULL",
            user=self.user_id,
        )
        if marked:
            await notify(self.session, Change("notice", self.user_id))  # the user's other open pages
        return marked

    async def prefs(self) -> PrefsOut:
        """The user's preferences (the defaults when never set)."""
        row = await self.session.get(NotificationPref, self.user_id)
        row = row or NotificationPref(user_id=self.user_id)
        return PrefsOut(row.email, row.in_app, row.muted)

    async def set_prefs(self, data: PrefsIn) -> PrefsOut:
        """Change the preferences the request names."""
        row = await self.session.get(NotificationPref, self.user_id) or NotificationPref(user_id=self.user_id)
        if data.email is not None:
            row.email = data.email
        if data.in_app is not None:
            row.in_app = data.in_app
        if data.muted is not None:
            row.muted = data.muted
        self.session.add(row)
        await self.session.flush()
        return PrefsOut(row.email, row.in_app, row.muted)
