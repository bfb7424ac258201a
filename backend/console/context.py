"""The console's services of a request (the ``con`` dependency), on the request's transaction,
scope and audit log, and the live socket's access checks (``live_access``)."""

from __future__ import annotations

from functools import cached_property

from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope
from backend.accounts.runtime import AccountsRuntime
from backend.audit.services import AuditService
from backend.console.devices import DeviceConsole
from backend.console.images import ImageLibrary
from backend.console.live_access import LiveAccess
from backend.console.runtime import ConsoleRuntime
from backend.console.templates import TemplateEditor


class ConsoleServices:
    """Templates and devices as the signed-in user may see and change them."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, runtime: ConsoleRuntime) -> None:
        self.session = session
        self.scope = scope
        self.audit = audit
        self.runtime = runtime

    @cached_property
    def templates(self) -> TemplateEditor:
        return TemplateEditor(self.session, self.scope, self.audit)

    @cached_property
    def devices(self) -> DeviceConsole:
        return DeviceConsole(self.session, self.scope, self.audit, self.runtime)

    @cached_property
    def images(self) -> ImageLibrary:
        return ImageLibrary(self.session, self.scope, self.audit, self.runtime.images)


def provide_console(
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    console_runtime: NamedDependency[ConsoleRuntime],
) -> ConsoleServices:
    """The ``con`` dependency of console routes and pages."""
    return ConsoleServices(db_session, org_scope, audit, console_runtime)


def provide_live_access(
    accounts_runtime: NamedDependency[AccountsRuntime], console_runtime: NamedDependency[ConsoleRuntime]
) -> LiveAccess:
    """The ``live_access`` dependency of the console's live socket."""
    return LiveAccess(accounts_runtime, console_runtime)


def console_dependencies() -> dict[str, Provide]:
    """What the console area provides to its routes and pages."""
    return {
        "con": Provide(provide_console, sync_to_thread=False),
        "live_access": Provide(provide_live_access, sync_to_thread=False),
    }
