"""Devices: creation with an auth token, token lookup and rotation, connection state."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.db.changes import Change, notify
from backend.devices.models import Device
from backend.errors import ConflictError, NotFoundError
from backend.security import AuthToken, Secrets


class DeviceService:
    """Operations on devices; tokens go in and out only through this class."""

    def __init__(self, session: AsyncSession, secrets: Secrets) -> None:
        self.session = session
        self.secrets = secrets

    async def create(
        self, org_id: int, template_id: int, name: str, token: AuthToken | None = None
    ) -> tuple[Device, AuthToken]:
        """A new device with the given or a fresh token."""
        token = token or AuthToken.generate()
        await self._ensure_token_free(token)
        device = Device(
            org_id=org_id,
            template_id=template_id,
            name=name,
            token_hmac=self.secrets.token_hmac(token),
            token_encrypted=self.secrets.encrypt_token(token),
        )
        self.session.add(device)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise ConflictError(f"a device named {name!r} already exists in this organization") from exc
        return device, token

    async def by_name(self, org_id: int, name: str) -> Device | None:
        """The device called ``name`` in the organization, if any."""
        result = await self.session.exec(select(Device).where(Device.org_id == org_id, Device.name == name))
        return result.first()

    async def by_name_anywhere(self, name: str) -> Device:
        """The one device called ``name`` in any organization (for the CLI)."""
        result = await self.session.exec(select(Device).where(Device.name == name))
        found = list(result.all())
        if not found:
            raise NotFoundError(f"no device named {name!r}")
        if len(found) > 1:
            raise ConflictError(f"{len(found)} devices are named {name!r}; rename one of them")
        return found[0]

    async def by_token(self, token: str) -> Device | None:
        """The device holding this token, if any."""
        result = await self.session.exec(select(Device).where(Device.token_hmac == self.secrets.token_hmac(token)))
        return result.first()

    async def list(self, org_id: int | None = None) -> list[Device]:
        """Devices, of one organization or all, by id."""
        query = select(Device).order_by(Device.id)  # type: ignore[arg-type]
        if org_id is not None:
            query = query.where(Device.org_id == org_id)
        return list((await self.session.exec(query)).all())

    def token_of(self, device: Device) -> AuthToken:
        """The device's token in clear (for its owner only)."""
        return self.secrets.decrypt_token(device.token_encrypted)

    async def set_token(self, device: Device, token: AuthToken | None = None) -> AuthToken:
        """Give the device a new (or the given) token; the old one stops working."""
        token = token or AuthToken.generate()
        if self.secrets.token_hmac(token) != device.token_hmac:
            await self._ensure_token_free(token)
        changed = self.secrets.token_hmac(token) != device.token_hmac
        device.token_hmac = self.secrets.token_hmac(token)
        device.token_encrypted = self.secrets.encrypt_token(token)
        self.session.add(device)
        await self.session.flush()
        if changed and device.id is not None:
            await notify(self.session, Change("device", device.id, revoked=True))
        return token

    async def moved(self, device: Device) -> None:
        """Persist a change of the device's template and tell the other processes."""
        self.session.add(device)
        await self.session.flush()
        assert device.id is not None
        await notify(self.session, Change("device", device.id))

    async def _ensure_token_free(self, token: AuthToken) -> None:
        if await self.by_token(token.value) is not None:
            raise ConflictError("that token already belongs to another device")
