"""Tables of webhooks and their delivery log (schema: migrations/0016)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Integer, SmallInteger, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class Webhook(SQLModel, table=True):
    """An organization's webhook: its trigger, its request and its signing secret."""

    __tablename__ = "webhook"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    org_id: int = Field(sa_column=Column(BigInteger, ForeignKey("organization.id"), nullable=False))
    name: str
    enabled: bool = True
    trigger_kind: str
    template_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("template.id")))
    device_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("device.id")))
    pin: int | None = Field(default=None, sa_column=Column(SmallInteger))
    method: str
    url: str
    headers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    body_kind: str = "json"
    body_template: str = ""
    secret: str
    failures: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    disabled_reason: str | None = None
    created_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )
    updated_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )


class WebhookDelivery(SQLModel, table=True):
    """One delivery of a webhook, or its refusal."""

    __tablename__ = "webhook_delivery"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    webhook_id: int = Field(sa_column=Column(BigInteger, ForeignKey("webhook.id"), nullable=False))
    org_id: int = Field(sa_column=Column(BigInteger, ForeignKey("organization.id"), nullable=False))
    at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )
    trigger: str
    request: str
    ok: bool
    refused: bool = False
    status: int | None = Field(default=None, sa_column=Column(SmallInteger))
    response_head: str = ""
    error: str | None = None
    attempt: int = Field(default=1, sa_column=Column(SmallInteger, nullable=False))
    duration_ms: int = Field(default=0, sa_column=Column(Integer, nullable=False))
