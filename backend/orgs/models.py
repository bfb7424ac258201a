"""Tables of organizations (a tree), roles and users (schema: migrations/0001)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, BigInteger, Column, DateTime, ForeignKey, Integer, Text, text
from sqlmodel import Field, SQLModel


class Organization(SQLModel, table=True):
    """An organization; ``parent_id`` makes the tree (None for the root)."""

    __tablename__ = "organization"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    parent_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("organization.id")))
    name: str
    tz: str = "UTC"
    created_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )


class Role(SQLModel, table=True):
    """A role: Blynk's built-ins (1 Admin, 2 Staff, 3 User) or an organization's own."""

    __tablename__ = "role"
    id: int = Field(sa_column=Column(Integer, primary_key=True))
    org_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("organization.id")))
    name: str
    permissions: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))


class User(SQLModel, table=True):
    """A person who signs in to the console."""

    __tablename__ = "app_user"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    org_id: int = Field(sa_column=Column(BigInteger, ForeignKey("organization.id"), nullable=False))
    email: str
    name: str = ""
    password_hash: str
    role_id: int = Field(sa_column=Column(Integer, ForeignKey("role.id"), nullable=False))
    status: str = "active"
    created_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )
    last_login_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
