"""Query parameters of the platform API with Blynk's names (``deviceId``, ``includeSubOrgDevices``...)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

DeviceId = Annotated[int, QueryParameter(name="deviceId", description="Device identifier")]
OrgId = Annotated[int, QueryParameter(name="orgId", description="Organization identifier")]
OptionalOrgId = Annotated[int | None, QueryParameter(name="orgId", description="Organization identifier")]
TemplateId = Annotated[int, QueryParameter(name="templateId", description="Template identifier (numeric)")]
UserId = Annotated[int, QueryParameter(name="userId", description="User identifier")]
RoleId = Annotated[
    int, QueryParameter(name="roleId", description="Role identifier (1 Admin, 2 Staff, 3 User, or custom)")
]
Pin = Annotated[str, QueryParameter(name="pin", description="Pin name such as v1 (or the datastream id)")]
Page = Annotated[int, QueryParameter(name="page", description="Page number starting from 0")]
Size = Annotated[int, QueryParameter(name="size", description="Page size, 1 to 1000")]
From = Annotated[int | None, QueryParameter(name="from", description="Unix epoch time in milliseconds")]
To = Annotated[int | None, QueryParameter(name="to", description="Unix epoch time in milliseconds (default: now)")]

__all__ = ["DeviceId", "From", "OptionalOrgId", "OrgId", "Page", "Pin", "RoleId", "Size", "TemplateId", "To", "UserId"]
