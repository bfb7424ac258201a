"""Tables of device templates, their datastreams, event definitions and metadata fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, SmallInteger, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class Template(SQLModel, table=True):
    """A device template (Blynk's "product"): its public id is ``TMPL`` + 8 characters."""

    __tablename__ = "template"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    public_id: str
    org_id: int = Field(sa_column=Column(BigInteger, ForeignKey("organization.id"), nullable=False))
    name: str
    description: str = ""
    hardware: str = "ESP32"
    connection_type: str = "WI_FI"
    heartbeat_interval: int = 45
    offline_ignore_seconds: int = 0
    gateway_enabled: bool = False
    """Blynk's "Enable for Gateway API": a device's token logs in as a gateway (``mgmt_device``)."""
    raw_retention_days: int | None = None
    rollup_retention_days: int | None = None
    created_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )


class Datastream(SQLModel, table=True):
    """A virtual pin of a template, addressed by name over MQTT and by pin over HTTP."""

    __tablename__ = "datastream"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    template_id: int = Field(sa_column=Column(BigInteger, ForeignKey("template.id"), nullable=False))
    pin: int = Field(sa_column=Column(SmallInteger, nullable=False))
    name: str
    alias: str = ""
    type: str
    min: float | None = None
    max: float | None = None
    default_value: str | None = None
    units: str = ""
    decimals: int | None = Field(default=None, sa_column=Column(SmallInteger))
    save_raw: bool = False
    sync: bool = False
    wait_confirmation: bool = False
    enum_values: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))


class EventDef(SQLModel, table=True):
    """An event a device of the template may log (``event/<code>``)."""

    __tablename__ = "event_def"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    template_id: int = Field(sa_column=Column(BigInteger, ForeignKey("template.id"), nullable=False))
    code: str
    name: str
    type: str = "info"
    description: str = ""
    notify: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    """Blynk's notification settings of the event (``templates.schemas.EventNotify``); None: off."""


class MetaField(SQLModel, table=True):
    """A custom metadata field of a template (system fields are built in, see templates.meta)."""

    __tablename__ = "meta_field"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    template_id: int = Field(sa_column=Column(BigInteger, ForeignKey("template.id"), nullable=False))
    field_id: int
    name: str
    type: str = "text"
    default_value: str | None = None
