"""Tables of the device API's files and daily limits (migration 0003)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Date, DateTime, ForeignKey, Integer, Text, text
from sqlmodel import Field, SQLModel


class DeviceFile(SQLModel, table=True):
    """A file kept for a device: an upload (``file``), an ESP32 core dump (``dump``) or a data
    export zip (``export``). ``stored_name`` is the name on disk and in the file's URL."""

    __tablename__ = "device_file"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    device_id: int = Field(sa_column=Column(BigInteger, ForeignKey("device.id"), nullable=False))
    name: str
    stored_name: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    content_type: str = Field(
        default="application/octet-stream", sa_column_kwargs={"server_default": text("'application/octet-stream'")}
    )
    kind: str = Field(default="file", sa_column_kwargs={"server_default": text("'file'")})
    created_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), sa_column_kwargs={"server_default": text("now()")}
    )


class DeviceQuota(SQLModel, table=True):
    """How much of one daily limit (``import``, ``export``, ``upload``) a device used on a UTC day."""

    __tablename__ = "device_quota"
    device_id: int = Field(sa_column=Column(BigInteger, ForeignKey("device.id"), primary_key=True))
    kind: str = Field(sa_column=Column(Text, primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    used: int = Field(sa_column=Column(Integer, nullable=False))
