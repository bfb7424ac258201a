"""Claiming a static token's device with its claim code, and giving it back.

A claim moves the device (made now if it never connected) to the claimer's organization with
the claimer as owner; the code then claims nothing more until the device is unclaimed or
deleted (both give it back to the manufacturer as unclaimed, and its code works once more, as
for a device sold on). A wrong code counts against the claimer and the address
(:class:`ClaimThrottle`); so does a used one. Only the code claims: a device's auth token is
no claim code, so a token read out of an unclaimed device claims nothing. A device without a
screen is claimed by its serial and the PIN of a window it opened (:meth:`Claims.claim_headless`,
``windows.py``).

Giving a device back erases what its owner left on it (history, latest values, metadata back
to the factory's) before the manufacturer sees it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission
from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.db.changes import Change, notify
from backend.db.sql import execute, fetch_all, fetch_one, fetch_unique
from backend.devices.admin import DeviceAdmin, check_device_name
from backend.devices.latest import LatestValues
from backend.devices.signals import DeviceSignals
from backend.errors import ConflictError, NotFoundError, PermissionDeniedError
from backend.history.writer import HistoryWriter
from backend.inject.activation import DEFAULT_NAME, materialize, reset_meta
from backend.inject.codes import ClaimCode
from backend.inject.throttle import ClaimThrottle
from backend.inject.windows import PIN, pin_hmac
from backend.security import Secrets

WRONG_CODE = "no device has this claim code"


@dataclass(frozen=True, slots=True)
class Claimed:
    """The device a claim gave its claimer."""

    device_id: int
    org_id: int
    owner_id: int | None
    name: str
    template_id: int


class Claims:
    """Claims and unclaims by one principal."""

    def __init__(
        self,
        session: AsyncSession,
        scope: Scope,
        audit: AuditService,
        secrets: Secrets,
        throttle: ClaimThrottle,
        signals: DeviceSignals,
        latest: LatestValues,
        history: HistoryWriter,
    ) -> None:
        self.session = session
        self.scope = scope
        self.principal = scope.principal
        self.audit = audit
        self.secrets = secrets
        self.throttle = throttle
        self.signals = signals
        self.latest = latest
        self.history = history

    async def claim(
        self, code_text: str, name: str | None = None, org_id: int | None = None, owner_id: int | None = None
    ) -> Claimed:
        """Claim the device of a claim code into ``org_id`` (default: the claimer's) for
        ``owner_id`` (a user of that organization; default: the claimer, if a user)."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        owner = await self._owner(org, owner_id)
        name = None if name is None else check_device_name(name)
        claimer = self._claimer()
        await self.throttle.guard(claimer, self.principal.ip)
        code = ClaimCode.parse(code_text)
        row = None
        if code is not None:
            row = await fetch_one(
                self.session,
                "SELECT id, org_id, device_id, claimed_at FROM static_token WHERE claim_hmac = :h FOR UPDATE",
                h=self.secrets.token_hmac(code.sealed()),
            )
        if row is None or row["claimed_at"] is not None:
            await self.throttle.failed(claimer, self.principal.ip)
            if row is None:
                raise NotFoundError(WRONG_CODE)
            raise ConflictError("this device has already been claimed")
        return await self._take(row, org, owner, name, "claim code")

    async def claim_headless(
        self, serial: str, pin: str, name: str | None = None, org_id: int | None = None, owner_id: int | None = None
    ) -> Claimed:
        """Claim the device whose open claim window has this PIN and whose static token carries
        ``serial`` among its metadata values; the window closes."""
        org = org_id if org_id is not None else self.principal.org_id
        await self.scope.require_org(org)
        owner = await self._owner(org, owner_id)
        name = None if name is None else check_device_name(name)
        claimer = self._claimer()
        await self.throttle.guard(claimer, self.principal.ip)
        row = None
        if serial.strip() and PIN.match(pin.strip()):
            row = await fetch_one(
                self.session,
                """SELECT s.id, s.org_id, s.device_id, s.claimed_at FROM claim_window w
                JOIN static_token s ON s.id = w.static_token_id
                WHERE w.pin_hmac = :pin AND w.until > now() AND s.claimed_at IS NULL
                  AND EXISTS (SELECT 1 FROM jsonb_each_text(s.meta) m WHERE m.value = :serial)
                FOR UPDATE OF s""",
                pin=pin_hmac(self.secrets, pin.strip()),
                serial=serial.strip(),
            )
        if row is None:
            await self.throttle.failed(claimer, self.principal.ip)
            raise NotFoundError("no device with this serial has an open claim window with this PIN")
        await execute(self.session, "DELETE FROM claim_window WHERE static_token_id = :id", id=row["id"])
        return await self._take(row, org, owner, name, "headless")

    async def _take(self, row: RowMapping, org: int, owner: int | None, name: str | None, how: str) -> Claimed:
        """The claim itself, once the claimer proved they may: place the device, mark the token."""
        device_id = await self._place(int(row["id"]), row["device_id"], org, owner, name)
        await execute(
            self.session,
            "UPDATE static_token SET claimed_org_id = :org, owner_id = :owner, claimed_at = now() WHERE id = :id",
            org=org,
            owner=owner,
            id=row["id"],
        )
        claimed = await self._claimed(device_id)
        await self.audit.record(
            self.principal, org, "device.claim", "device", device_id, static_token=row["id"], how=how
        )
        if row["org_id"] != org:
            await self.audit.record(
                self.principal, row["org_id"], "static_token.claimed", "device", device_id, static_token=row["id"]
            )
        self.signals.activated(device_id)
        return claimed

    def _claimer(self) -> str:
        return f"client:{self.principal.client_id}" if self.principal.client_id else f"user:{self.principal.user_id}"

    async def unclaim(self, device_id: int) -> None:
        """Give a claimed device back to its manufacturer, unclaimed, its owner's data erased."""
        row = await fetch_one(
            self.session,
            """SELECT d.id, d.owner_id, d.org_id, s.id AS token_id, s.org_id AS maker, s.claimed_at
            FROM device d LEFT JOIN static_token s ON s.device_id = d.id
            WHERE d.id = :id AND d.org_id = ANY(:orgs) FOR UPDATE OF d""",
            id=device_id,
            orgs=sorted(await self.scope.org_ids()),
        )
        if row is None or (
            not self.principal.has(Permission.DEVICES_VIEW) and row["owner_id"] != self.principal.user_id
        ):
            raise NotFoundError("device not found")
        if not self.principal.has(Permission.DEVICES_EDIT) and row["owner_id"] != self.principal.user_id:
            raise PermissionDeniedError("you may unclaim only the devices you own")
        if row["token_id"] is None or row["claimed_at"] is None:
            raise ConflictError("this device was not claimed with a static token")
        # what its owner left goes first (values in memory too, rows on their way to the history)
        await DeviceAdmin(self.session, self.scope, self.audit, self.secrets).clear(
            device_id, self.latest, self.history
        )
        await fetch_unique(
            self.session,
            f"""UPDATE device d SET org_id = s.org_id, owner_id = NULL, name = {DEFAULT_NAME}
            FROM static_token s JOIN template t ON t.id = s.template_id
            WHERE d.id = :dev AND s.id = :token RETURNING d.id""",
            "the manufacturer already has a device of this device's name",
            dev=device_id,
            token=row["token_id"],
        )
        await execute(
            self.session,
            "UPDATE static_token SET claimed_org_id = NULL, owner_id = NULL, claimed_at = NULL WHERE id = :id",
            id=row["token_id"],
        )
        await reset_meta(self.session, int(row["token_id"]), device_id)
        await notify(self.session, Change("device", device_id))
        await self.audit.record(self.principal, row["org_id"], "device.unclaim", "device", device_id)
        await self.audit.record(
            self.principal, row["maker"], "static_token.unclaimed", "device", device_id, static_token=row["token_id"]
        )

    async def claimed(self) -> list[Claimed]:
        """The claimed static-token devices the principal may see (all of the scope's with
        ``devices.view``, else the ones they own), newest claim first."""
        where = "d.org_id = ANY(:orgs)"
        params: dict[str, object] = {"orgs": sorted(await self.scope.org_ids())}
        if not self.principal.has(Permission.DEVICES_VIEW):
            where += " AND d.owner_id = :me"
            params["me"] = self.principal.user_id
        rows = await fetch_all(
            self.session,
            f"""SELECT d.id, d.org_id, d.owner_id, d.name, d.template_id FROM device d
            JOIN static_token s ON s.device_id = d.id WHERE s.claimed_at IS NOT NULL AND {where}
            ORDER BY s.claimed_at DESC, d.id LIMIT 500""",
            **params,
        )
        return [
            Claimed(int(r["id"]), int(r["org_id"]), r["owner_id"], str(r["name"]), int(r["template_id"])) for r in rows
        ]

    async def _owner(self, org: int, owner_id: int | None) -> int | None:
        if owner_id is None:
            return self.principal.user_id if self.principal.client_id is None and org == self.principal.org_id else None
        user = await fetch_one(
            self.session, "SELECT id FROM app_user WHERE id = :id AND org_id = :org", id=owner_id, org=org
        )
        if user is None:
            raise NotFoundError("user not found")
        return owner_id

    async def _place(self, token_id: int, device_id: int | None, org: int, owner: int | None, name: str | None) -> int:
        if device_id is None:
            return await materialize(self.session, token_id, org, owner, name)
        await fetch_unique(
            self.session,
            "UPDATE device SET org_id = :org, owner_id = :owner, name = coalesce(:name, name) WHERE id = :id RETURNING id",
            "a device of that name already exists in the organization",
            org=org,
            owner=owner,
            name=name,
            id=device_id,
        )
        await notify(self.session, Change("device", device_id))
        return device_id

    async def _claimed(self, device_id: int) -> Claimed:
        row = await fetch_one(
            self.session, "SELECT id, org_id, owner_id, name, template_id FROM device WHERE id = :id", id=device_id
        )
        assert row is not None
        return Claimed(int(row["id"]), int(row["org_id"]), row["owner_id"], str(row["name"]), int(row["template_id"]))
