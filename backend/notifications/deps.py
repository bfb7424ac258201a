"""What the notifications area provides to its routes: the request's :class:`Inbox`, and the
notice socket's access checks (``notice_access``)."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.accounts.runtime import AccountsRuntime
from backend.notifications.inbox import Inbox
from backend.notifications.live import NoticeAccess, NoticeFeed


def provide_inbox(db_session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]) -> Inbox:
    """``inbox``: the signed-in user's notifications, in the request's transaction."""
    return Inbox(db_session, principal)


def provide_notice_access(
    accounts_runtime: NamedDependency[AccountsRuntime], notices: NamedDependency[NoticeFeed]
) -> NoticeAccess:
    """``notice_access``: the notice socket's checks."""
    return NoticeAccess(accounts_runtime, notices)


def notifications_dependencies() -> dict[str, Provide]:
    """What the notifications area provides to the routers that mount its routes."""
    return {
        "inbox": Provide(provide_inbox, sync_to_thread=False),
        "notice_access": Provide(provide_notice_access, sync_to_thread=False),
    }
