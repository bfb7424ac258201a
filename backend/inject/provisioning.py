"""Wi-Fi provisioning tokens (Blynk.Inject's dynamic provisioning, issue #17 item 2).

A signed-in user asks for a token for a template and the device's name; the console (or the
``openblynk provision`` CLI) hands it to the device over its access point's HTTP API; the device
that first connects with it becomes that user's device, in their organization, with that name
(``activation.StaticActivation`` makes it in the broker process). An unused token expires after
``OPENBLYNK_PROVISIONING_TOKEN_MINUTES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope, template_above
from backend.audit.services import AuditService
from backend.db.sql import fetch_one
from backend.devices.admin import check_device_name
from backend.errors import ConflictError, NotFoundError
from backend.security import AuthToken, Secrets


@dataclass(frozen=True, slots=True)
class ProvisioningToken:
    """A token issued, in clear (shown once), and until when it waits."""

    token: AuthToken
    expires_at: datetime
    template_public: str


class Provisioning:
    """Provisioning tokens of one principal."""

    def __init__(
        self, session: AsyncSession, scope: Scope, audit: AuditService, secrets: Secrets, minutes: int
    ) -> None:
        self.session = session
        self.scope = scope
        self.audit = audit
        self.secrets = secrets
        self.minutes = minutes

    async def issue(
        self, template_id: int, name: str, org_id: int | None = None, owner_id: int | None = None
    ) -> ProvisioningToken:
        """A token for a new device of ``template_id`` called ``name``, in ``org_id`` (default the
        caller's) for ``owner_id`` (default the caller, when a user of that organization)."""
        principal = self.scope.principal
        org = org_id if org_id is not None else principal.org_id
        await self.scope.require_org(org)
        template = await fetch_one(self.session, "SELECT public_id FROM template WHERE id = :t", t=template_id)
        if template is None or not await template_above(self.session, template_id, org):
            raise NotFoundError("template not found")
        name = check_device_name(name)
        owner = await self._owner(org, owner_id)
        taken = await fetch_one(
            self.session, "SELECT 1 AS x FROM device WHERE org_id = :org AND name = :name", org=org, name=name
        )
        if taken is not None:
            raise ConflictError(f"a device named {name!r} already exists in this organization")
        token = AuthToken.generate()
        row = await fetch_one(
            self.session,
            """INSERT INTO provisioning_token (token_hmac, token_encrypted, org_id, template_id, owner_id, name, expires_at)
            VALUES (:h, :e, :org, :t, :owner, :name, now() + make_interval(mins => :minutes)) RETURNING id, expires_at""",
            h=self.secrets.token_hmac(token),
            e=self.secrets.encrypt_token(token),
            org=org,
            t=template_id,
            owner=owner,
            name=name,
            minutes=self.minutes,
        )
        assert row is not None
        await self.audit.record(
            principal, org, "device.provisioning_token", "template", template_id, name=name, token_id=row["id"]
        )
        return ProvisioningToken(token, row["expires_at"], str(template["public_id"]))

    async def _owner(self, org: int, owner_id: int | None) -> int | None:
        principal = self.scope.principal
        if owner_id is None:
            return principal.user_id if principal.client_id is None and org == principal.org_id else None
        if await fetch_one(
            self.session, "SELECT 1 AS x FROM app_user WHERE id = :u AND org_id = :o", u=owner_id, o=org
        ):
            return owner_id
        raise NotFoundError("user not found")
