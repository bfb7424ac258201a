"""A static token's device row, made when the token is first used.

The broker's authenticator asks :meth:`StaticActivation.activate` about a token no device holds:
if it is a static token without a device, the device is made in the manufacturer's
organization, unclaimed and without an owner, with the metadata its CSV line gave; the login
goes on as that device's. A claim before the device ever connected makes it in the claimer's
organization instead (:func:`materialize`, used by both).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.engine import Database
from backend.db.sql import execute, fetch_one, fetch_unique
from backend.devices.signals import DeviceSignals
from backend.errors import ConflictError

log = logging.getLogger(__name__)
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
    """The broker's way from an unknown token to the device made for it: a static token's
    (the manufacturer's, unclaimed) or a Wi-Fi provisioning token's (its user's)."""

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
                return await self._provisioned(session, token_hmac)
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

    async def _provisioned(self, session: AsyncSession, token_hmac: bytes) -> int | None:
        """The device of a live Wi-Fi provisioning token, made now for its user: in their
        organization, named as they chose; None for an unknown, used or expired token."""
        row = await fetch_one(
            session,
            """SELECT id, org_id, template_id, owner_id, name, token_encrypted FROM provisioning_token
            WHERE token_hmac = :h AND device_id IS NULL AND expires_at > now() FOR UPDATE""",
            h=token_hmac,
        )
        if row is None:
            return None
        try:
            made = await fetch_unique(
                session,
                """INSERT INTO device (org_id, template_id, name, owner_id, token_hmac, token_encrypted)
                VALUES (:org, :t, :name, :owner, :h, :e) RETURNING id""",
                "a device of that name already exists in the organization",
                org=row["org_id"],
                t=row["template_id"],
                name=row["name"],
                owner=row["owner_id"],
                h=token_hmac,
                e=row["token_encrypted"],
            )
        except ConflictError:
            log.warning("provisioning token %s: its device name is taken now; refused", row["id"])
            return None
        device_id = int(made["id"])
        await execute(session, "UPDATE provisioning_token SET device_id = :d WHERE id = :id", d=device_id, id=row["id"])
        await notify(session, Change("activated", device_id))  # the app's DeviceSignals hear it (activation_listener)
        await AuditService(session).record(
            None,
            int(row["org_id"]),
            "device.provision",
            "device",
            device_id,
            actor_email="device",
            provisioning_token=int(row["id"]),
            owner_id=row["owner_id"],
        )
        return device_id


def activation_listener(signals: DeviceSignals) -> Callable[[Change], Awaitable[None]]:
    """For the app's change listener: a device activated in the broker process (a provisioning
    token's first connection) is told to the app's :class:`DeviceSignals` (webhooks, automations).
    A claim tells them directly, in the request's process."""

    async def apply(change: Change) -> None:
        if change.kind == "activated":
            signals.activated(change.id)

    return apply
