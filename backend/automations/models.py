"""Tables of automations and their log (schema: migrations/0013).

``condition`` and ``actions`` hold the JSON of :mod:`backend.automations.schemas`, checked on
every write; ``last_fired_at`` and ``state`` belong to the engine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, DateTime, ForeignKey, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class Automation(SQLModel, table=True):
    """An organization's automation: one condition, ordered actions, an enabled flag."""

    __tablename__ = "automation"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    org_id: int = Field(sa_column=Column(BigInteger, ForeignKey("organization.id"), nullable=False))
    name: str
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=text("true")))
    condition: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    actions: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    limit_period_s: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    created_by: int | None = Field(default=None, sa_column=Column(BigInteger))
    last_fired_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    state: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    )
    created_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )
    updated_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )


class AutomationRun(SQLModel, table=True):
    """One run of an automation; ``waiting`` runs resume at ``resume_at`` from ``next_action``."""

    __tablename__ = "automation_run"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    automation_id: int = Field(sa_column=Column(BigInteger, ForeignKey("automation.id"), nullable=False))
    org_id: int = Field(sa_column=Column(BigInteger, ForeignKey("organization.id"), nullable=False))
    trigger: str
    trigger_device_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("device.id")))
    trigger_value: str | None = None
    started_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    status: str = "running"
    """``running``, ``waiting``, ``ok``, ``failed`` or ``interrupted``."""
    next_action: int = 0
    resume_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    slot: str | None = None
    """The scheduled slot a time-based run was fired for (unique per automation; migrations/0021)."""
    owner: int | None = None
    """The engine process executing a ``running`` run (its advisory lock key)."""
    resumes: int = 0
    """How often the run was taken up again after its process ended."""
    note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=text("''")))
    """Why the run was resumed or interrupted."""


class AutomationStep(SQLModel, table=True):
    """The outcome of one action of a run (one row per position)."""

    __tablename__ = "automation_step"
    run_id: int = Field(sa_column=Column(BigInteger, ForeignKey("automation_run.id"), primary_key=True))
    position: int = Field(sa_column=Column(Integer, primary_key=True))
    action_type: str
    ok: bool
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=text("''")))
    started_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )
    duration_ms: int = 0
