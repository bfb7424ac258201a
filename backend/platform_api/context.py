"""The per-request bundle of platform API services (the accounts context's transaction,
scope and audit log, plus the platform runtime)."""

from __future__ import annotations

from functools import cached_property

from litestar.di import NamedDependency

from backend.accounts.context import ApiServices
from backend.platform_api.devices import PlatformDevices
from backend.platform_api.directory import PlatformDirectory
from backend.platform_api.history import PlatformHistory
from backend.platform_api.lookups import PlatformLookups
from backend.platform_api.runtime import PlatformRuntime


class PlatformServices:
    """Devices, history, organizations, templates and users as the caller may see them."""

    def __init__(self, api: ApiServices, runtime: PlatformRuntime) -> None:
        self.api = api
        self.runtime = runtime

    @cached_property
    def devices(self) -> PlatformDevices:
        return PlatformDevices(self.api.session, self.api.scope, self.api.audit, self.runtime)

    @cached_property
    def history(self) -> PlatformHistory:
        return PlatformHistory(self.devices, self.runtime.pool)

    @cached_property
    def lookups(self) -> PlatformLookups:
        return PlatformLookups(self.devices, self.api.tags)

    @cached_property
    def directory(self) -> PlatformDirectory:
        return PlatformDirectory(self.api)


async def provide_platform(svc: NamedDependency[ApiServices],
                           platform_runtime: NamedDependency[PlatformRuntime]) -> PlatformServices:
    """The ``api`` dependency of every platform API handler."""
    return PlatformServices(svc, platform_runtime)
