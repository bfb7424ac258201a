"""The inject area's services of a request (the ``inject`` dependency): static tokens and
claims on the request's transaction, scope and audit log, with the parts of the runtime they
need (``inject_runtime``, provided by the top)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope
from backend.audit.services import AuditService
from backend.devices.latest import LatestValues
from backend.devices.signals import DeviceSignals
from backend.history.writer import HistoryWriter
from backend.inject.claims import Claims
from backend.inject.provisioning import Provisioning
from backend.inject.static_tokens import StaticTokens
from backend.inject.throttle import ClaimThrottle
from backend.inject.tokens import DeviceTokens
from backend.security import Secrets
from backend.settings import Settings


@dataclass(frozen=True, slots=True)
class InjectRuntime:
    """What the inject area takes from the running app."""

    secrets: Secrets
    signals: DeviceSignals
    settings: Settings
    latest: LatestValues
    """Latest values, erased (in memory too) when a device is given back."""
    history: HistoryWriter
    """The history writer, settled before a given-back device's history is erased."""


class InjectServices:
    """Static tokens, claims and device tokens as one principal may use them."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, runtime: InjectRuntime) -> None:
        self.session = session
        self.scope = scope
        self.audit = audit
        self.runtime = runtime

    @cached_property
    def tokens(self) -> StaticTokens:
        return StaticTokens(
            self.session, self.scope, self.audit, self.runtime.secrets, self.runtime.settings.static_tokens_per_batch
        )

    @cached_property
    def device_tokens(self) -> DeviceTokens:
        return DeviceTokens(self.session, self.scope, self.audit, self.runtime.secrets)

    @cached_property
    def provisioning(self) -> Provisioning:
        minutes = self.runtime.settings.provisioning_token_minutes
        return Provisioning(self.session, self.scope, self.audit, self.runtime.secrets, minutes)

    @cached_property
    def claims(self) -> Claims:
        s = self.runtime.settings
        throttle = ClaimThrottle(
            self.session, s.claim_failures_per_user, s.claim_failures_per_address, s.claim_failure_window_seconds
        )
        rt = self.runtime
        return Claims(self.session, self.scope, self.audit, rt.secrets, throttle, rt.signals, rt.latest, rt.history)


def provide_inject(
    db_session: NamedDependency[AsyncSession],
    org_scope: NamedDependency[Scope],
    audit: NamedDependency[AuditService],
    inject_runtime: NamedDependency[InjectRuntime],
) -> InjectServices:
    """The ``inject`` dependency of the inject routes."""
    return InjectServices(db_session, org_scope, audit, inject_runtime)


def inject_dependencies() -> dict[str, Provide]:
    """Put on the controllers of the inject area."""
    return {"inject": Provide(provide_inject, sync_to_thread=False)}
