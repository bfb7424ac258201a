"""Wire types of the audit log route."""

from __future__ import annotations

from backend.audit.services import AuditEntry

# What the services return is what goes on the wire: one class per shape, never a mirror.
AuditOut = AuditEntry
