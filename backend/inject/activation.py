"""A static token's device row, made when the token is first used.

The broker's authenticator asks :meth:`StaticActivation.activate` about a token no device holds:
if it is a static token without a device, the device is made in the manufacturer's
organization, unclaimed and without an owner, with the metadata its CSV line gave; the login
goes on as that device's. A claim before the device ever connected makes it in the claimer's
organization instead (:func:`materialize`, used by both).
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.audit.services import AuditService
from backend.db.engine import Database
from backend.db.sql import execute, fetch_one, fetch_unique

DEFAULT_NAME = "btrim(regexp_replace(left(t.name, 36), '[^[:alnum:]_'' -]+', ' ', 'g') || ' ' || s.id)"
"""A static token device's name until someone names it: its template's (what of it a device name
may hold) and the token's id."""


async def materialize(session: AsyncSession, token_id: int, org_id: int, owner_id: int | None, name: str | None) -> int:
    """Make the device of static token ``token_id`` (locked by the caller) in ``org_id``; its id."""
    row = await fetch_unique(
        session,
        f"""INSERT INTO device (org_id, template_id, name, owner_id, token_hmac, token_encrypted)
        SELECT :org, s.template_id, coalesce(:name, {DEFAULT_NAME}), :owner, s.token_hmac, s.token_encrypted
        FROM static_token s JOIN template t ON t.id = s.template_id WHERE s.id = :id RETURNING id""",
        "a device of that name already exists in the organization",
        org=org_id,
        owner=owner_id,
        name=name,
        id=token_id,
    )
    device_id = int(row["id"])
    await reset_meta(session, token_id, device_id)
    await execute(session, "UPDATE static_token SET device_id = :dev WHERE id = :id", dev=device_id, id=token_id)
    return device_id


async def reset_meta(session: AsyncSession, token_id: int, device_id: int) -> None:
    """The device's metadata as the factory left it: the values its static token carries."""
    await execute(session, "DELETE FROM device_meta WHERE device_id = :dev", dev=device_id)
    await execute(
        session,
        """INSERT INTO device_meta (device_id, name, value, updated_at)
        SELECT :dev, m.key, m.value, now() FROM static_token s, jsonb_each_text(s.meta) AS m WHERE s.id = :id""",
        dev=device_id,
        id=token_id,
    )


class StaticActivation:
    """The broker's way from an unknown token to a static token's new device."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def activate(self, token_hmac: bytes) -> int | None:
        """The device of the static token with this HMAC, made now if it has none; None if no
        static token has it."""
        async with self.db.session() as session:
            row = await fetch_one(
                session,
                "SELECT id, org_id, device_id FROM static_token WHERE token_hmac = :h FOR UPDATE",
                h=token_hmac,
            )
            if row is None:
                return None
            if row["device_id"] is not None:  # made a moment ago, by another login or a claim
                return int(row["device_id"])
            device_id = await materialize(session, int(row["id"]), int(row["org_id"]), None, None)
            await AuditService(session).record(
                None,
                int(row["org_id"]),
                "device.activate",
                "device",
                device_id,
                actor_email="device",
                static_token=int(row["id"]),
                how="static token, unclaimed",
            )
            return device_id
