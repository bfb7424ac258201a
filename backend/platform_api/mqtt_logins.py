"""OAuth clients as broker logins: the platform API's side of ``backend.devices.auth.ClientLogins``.

Blynk's MQTT Gateway API lets an OAuth client log in to the broker with its id and secret.
The broker process holds no request transaction, so each check opens a short session of its own.
"""

from __future__ import annotations

from datetime import timedelta

from backend.db.engine import Database
from backend.platform_api.oauth import TokenService

_UNUSED = timedelta(0)
"""Refresh lifetime: these checks never issue tokens."""


class OAuthClientLogins:
    """Checks an OAuth client's secret and whether it still works (``ClientLogins``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def verify(self, client_id: str, client_secret: str) -> int | None:
        """The id of a working client whose secret this is, else None."""
        async with self.db.session() as session:
            return await TokenService(session, _UNUSED).verify_client(client_id, client_secret)

    async def working_org(self, client_pk: int) -> int | None:
        """The organization of a client that still works, else None."""
        async with self.db.session() as session:
            return await TokenService(session, _UNUSED).working_org(client_pk)

    async def mqtt_org(self, client_pk: int) -> int | None:
        """The organization of a working client that "may use MQTT", else None."""
        async with self.db.session() as session:
            return await TokenService(session, _UNUSED).mqtt_org(client_pk)
