"""Blynk's actions log: datastream values set by a person or an API client (never the ones a
device sends), with who set them and whether the device was online at that moment.

Only :meth:`DataService.write_from_server` with an :class:`Actor` writes here, so the
ingest's device-originated path never touches this table. Entries are kept as long as the
device's raw history (``backend.history.maintenance``).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from backend.access.permissions import Principal
from backend.templates.values import db_text

_INSERT_SQL = """INSERT INTO device_action (device_id, pin, value, user_id, client_id, actor_email, is_online)
SELECT d.id, %s, %s, %s, %s, %s, d.online FROM device d WHERE d.id = %s"""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who set a value: a user (``user_id``) or a platform API client (``client_id``), and the
    address the log shows (a client's is ``oauth2:<client id>``)."""

    email: str
    user_id: int | None = None
    client_id: int | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """The actor a request's principal is (a client's ``user_id`` is 0: none is kept)."""
        return cls(principal.email, principal.user_id or None, principal.client_id)


class ActionLog:
    """Appends entries to ``device_action``."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def add(self, device_id: int, pin: int, value: str, actor: Actor) -> None:
        """Log one value set by ``actor`` (the device's online state read in the same statement;
        multi-values stored as ``datastream_value`` stores them)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                _INSERT_SQL, (pin, db_text(value), actor.user_id, actor.client_id, actor.email, device_id)
            )
