"""SQLModel tables of devices and their latest datastream values (schema: migrations/0001 and
0002).

The other tables of the devices area (``device_meta``, ``device_property``, ``device_event``,
``device_action``) have no model class: they are reached in plain SQL, written by the services
that own them (``meta.py``, ``properties.py``, ``timeline.py``, ``actions.py``).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, LargeBinary, SmallInteger, text
from sqlmodel import Field, SQLModel


class Device(SQLModel, table=True):
    """A device: belongs to one organization and one template; its token is stored as an
    HMAC (lookup) and Fernet-encrypted (display), never in clear."""

    __tablename__ = "device"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    org_id: int = Field(sa_column=Column(BigInteger, ForeignKey("organization.id"), nullable=False))
    template_id: int = Field(sa_column=Column(BigInteger, ForeignKey("template.id"), nullable=False))
    name: str
    owner_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("app_user.id")))
    token_hmac: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    token_encrypted: str
    fw_version: str | None = None
    fw_type: str | None = None
    fw_build: str | None = None
    blynk_version: str | None = None
    board_template_id: str | None = None
    rx_buffer: int | None = None
    online: bool = False
    ip: str | None = None
    client_id: str | None = None
    keep_alive: int | None = None
    connected_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    disconnected_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_seen: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    online_via: str | None = None
    msgs_in: int | None = Field(default=None, sa_column=Column(BigInteger))
    msgs_out: int | None = Field(default=None, sa_column=Column(BigInteger))
    bytes_in: int | None = Field(default=None, sa_column=Column(BigInteger))
    bytes_out: int | None = Field(default=None, sa_column=Column(BigInteger))
    vitals_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    disconnects_today: int = 0
    disconnects_day: date | None = None
    last_ping_ms: float | None = None
    last_ping_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )
    location_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    """The device's location (``backend.locations``, migration 0020: a foreign key to ``location``,
    a table with no model here, set to NULL when the location goes or the device moves away)."""


class DatastreamValue(SQLModel, table=True):
    """The latest value of one datastream of one device."""

    __tablename__ = "datastream_value"
    device_id: int = Field(sa_column=Column(BigInteger, ForeignKey("device.id"), primary_key=True))
    pin: int = Field(sa_column=Column(SmallInteger, primary_key=True))
    value: str
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
