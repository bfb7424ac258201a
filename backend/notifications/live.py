"""The bell's live notices: a new notification of a user tells that user's open console pages.

:meth:`Notifier.in_app` sends the change notice ``notice:<user id>`` with every notification
it stores; every app process hears it (``backend.db.changes``) and hands it to
:meth:`NoticeFeed.apply`, which wakes the user's subscriptions. The console's notice socket
(``console_ui/notices.py``) then reads the unread count in a transaction that also checks
the session again (:meth:`NoticeAccess.unread`), so a signed-out or suspended user's socket
learns nothing more and closes. The user's, role's and organization's own change notices wake
the subscription too, for the same check. Nothing here ever waits on a slow browser: a
subscription is one flag, however many notifications arrive before it is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from backend.access.permissions import Principal
from backend.accounts.runtime import AccountsRuntime
from backend.accounts.sessions import SessionService
from backend.db.changes import Change
from backend.notifications.inbox import Inbox

Key = tuple[str, int]


class NoticeSubscription:
    """Woken when something concerning one user's bell happened."""

    def __init__(self, feed: NoticeFeed, keys: frozenset[Key]) -> None:
        self.feed = feed
        self.keys = keys
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """Something happened: the next :meth:`wait` returns at once."""
        self._wake.set()

    async def wait(self) -> None:
        """Until something happened since the last wait."""
        await self._wake.wait()
        self._wake.clear()

    def close(self) -> None:
        """Stop being woken."""
        self.feed._unindex(self)

    def __enter__(self) -> NoticeSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NoticeFeed:
    """Subscriptions by the change notices that concern them (one per process)."""

    def __init__(self) -> None:
        self._by_key: dict[Key, set[NoticeSubscription]] = {}

    def subscribe(self, principal: Principal) -> NoticeSubscription:
        """Be woken by the user's notices and by changes of the user, role or organization."""
        keys = frozenset(notice_keys(principal))
        sub = NoticeSubscription(self, keys)
        for key in keys:
            self._by_key.setdefault(key, set()).add(sub)
        return sub

    async def apply(self, change: Change) -> None:
        """Wake the subscriptions a change notice concerns (a ``ChangeListener`` handler)."""
        for sub in list(self._by_key.get(change.key, ())):
            sub.poke()

    def subscribers(self, user_id: int) -> int:
        """How many subscriptions listen for a user's notices."""
        return len(self._by_key.get(("notice", user_id), ()))

    def _unindex(self, sub: NoticeSubscription) -> None:
        for key in sub.keys:
            subs = self._by_key.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_key[key]


def notice_keys(principal: Principal) -> Iterable[Key]:
    """The change notices that concern a user's bell."""
    return [
        ("notice", principal.user_id),
        ("user", principal.user_id),
        ("role", principal.role_id),
        ("org", principal.org_id),
    ]


class NoticeAccess:
    """What the notice socket asks while it runs, each time in a transaction of its own."""

    def __init__(self, accounts: AccountsRuntime, feed: NoticeFeed) -> None:
        self._accounts = accounts
        self.feed = feed

    async def unread(self, session_token: str, ip: str | None) -> tuple[Principal, int] | None:
        """The session's principal now and its unread count; None when the session has ended."""
        async with self._accounts.db.session() as session:
            principal = await SessionService(session, self._accounts.session_lifetime).authenticate(session_token, ip)
            if principal is None:
                return None
            return principal, await Inbox(session, principal).unread()
