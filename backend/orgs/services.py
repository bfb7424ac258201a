"""Organizations and users: the first-start bootstrap (root organization and administrator)."""

from __future__ import annotations

import logging
import secrets

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import ADMIN_ROLE
from backend.orgs.models import Organization, User
from backend.security import hash_password

log = logging.getLogger(__name__)


class OrgService:
    """Operations on the organization tree."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def root(self) -> Organization | None:
        """The root organization (the first one created), if any."""
        result = await self.session.exec(
            select(Organization).where(col(Organization.parent_id).is_(None)).order_by(col(Organization.id))
        )
        return result.first()

    async def ensure_root(self, admin_email: str, admin_password: str) -> Organization:
        """Create the root organization and its first administrator on first start."""
        root = await self.root()
        if root is not None:
            return root
        root = Organization(name="My Organization")
        self.session.add(root)
        await self.session.flush()
        assert root.id is not None
        password = admin_password or secrets.token_urlsafe(12)
        self.session.add(
            User(
                org_id=root.id,
                email=admin_email,
                name="Administrator",
                password_hash=hash_password(password),
                role_id=ADMIN_ROLE,
            )
        )
        await self.session.flush()
        if not admin_password:
            log.warning(
                "created administrator %s with generated password %s (shown once; "
                "set OPENBLYNK_ADMIN_PASSWORD to choose it)",
                admin_email,
                password,
            )
        else:
            log.info("created administrator %s", admin_email)
        return root
