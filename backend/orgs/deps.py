"""The organization tree, the device directory and device tags of a request, as dependencies."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.devices.directory import DeviceDirectory
from backend.devices.tags import DeviceTags
from backend.orgs.tree import OrgTreeService
from backend.settings import Settings


def provide_org_tree(
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    settings: NamedDependency[Settings],
) -> OrgTreeService:
    return OrgTreeService(db_session, org_scope, audit, settings.org_max_depth)


def provide_device_directory(
    db_session: NamedDependency[AsyncSession], org_scope: NamedDependency[Scope], audit: NamedDependency[AuditService]
) -> DeviceDirectory:
    return DeviceDirectory(db_session, org_scope, audit)


def provide_device_tags(
    db_session: NamedDependency[AsyncSession], org_scope: NamedDependency[Scope], audit: NamedDependency[AuditService]
) -> DeviceTags:
    return DeviceTags(db_session, org_scope, audit)


def orgs_dependencies() -> dict[str, Provide]:
    """What the orgs area provides to the routes that use its services."""
    return {
        "org_tree": Provide(provide_org_tree, sync_to_thread=False),
        "device_directory": Provide(provide_device_directory, sync_to_thread=False),
        "device_tags": Provide(provide_device_tags, sync_to_thread=False),
    }
