"""Tables of devices, their latest datastream values, metadata values, widget properties and
timeline (schema: migrations/0001 and 0002)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import text, BigInteger, Column, DateTime, ForeignKey, LargeBinary, SmallInteger
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
    created_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True),
                                       sa_column_kwargs={"server_default": text("now()")})


class DatastreamValue(SQLModel, table=True):
    """The latest value of one datastream of one device."""

    __tablename__ = "datastream_value"
    device_id: int = Field(sa_column=Column(BigInteger, ForeignKey("device.id"), primary_key=True))
    pin: int = Field(sa_column=Column(SmallInteger, primary_key=True))
    value: str
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class DeviceMeta(SQLModel, table=True):
    """The value of one metadata field of one device (system or custom field, by name)."""

    __tablename__ = "device_meta"
    device_id: int = Field(sa_column=Column(BigInteger, ForeignKey("device.id"), primary_key=True))
    name: str = Field(primary_key=True)
    value: str
    updated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True),
                                       sa_column_kwargs={"server_default": text("now()")})


class DeviceProperty(SQLModel, table=True):
    """A widget property (``label``, ``color``...) of one datastream of one device."""

    __tablename__ = "device_property"
    device_id: int = Field(sa_column=Column(BigInteger, ForeignKey("device.id"), primary_key=True))
    pin: int = Field(sa_column=Column(SmallInteger, primary_key=True))
    property: str = Field(primary_key=True)
    value: str
    updated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True),
                                       sa_column_kwargs={"server_default": text("now()")})


class DeviceEvent(SQLModel, table=True):
    """One entry of a device's timeline: a logged event, or the device going online/offline."""

    __tablename__ = "device_event"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    device_id: int = Field(sa_column=Column(BigInteger, ForeignKey("device.id"), nullable=False))
    ts: datetime | None = Field(default=None, sa_type=DateTime(timezone=True),
                                sa_column_kwargs={"server_default": text("now()")})
    kind: str
    code: str | None = None
    type: str | None = None
    description: str = ""
