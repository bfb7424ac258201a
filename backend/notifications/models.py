"""Tables of notifications and per-user preferences (schema: migrations/0015)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, text
from sqlmodel import Field, SQLModel


class Notification(SQLModel, table=True):
    """One in-app notification of one user."""

    __tablename__ = "notification"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    org_id: int = Field(sa_column=Column(BigInteger, ForeignKey("organization.id"), nullable=False))
    user_id: int = Field(sa_column=Column(BigInteger, ForeignKey("app_user.id"), nullable=False))
    title: str
    body: str = ""
    level: str = "info"
    device_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("device.id")))
    source: str = "system"
    source_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )
    read_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class NotificationPref(SQLModel, table=True):
    """A user's notification preferences (no row: everything on, not muted)."""

    __tablename__ = "notification_pref"
    user_id: int = Field(sa_column=Column(BigInteger, ForeignKey("app_user.id"), primary_key=True))
    email: bool = True
    in_app: bool = True
    muted: bool = False
