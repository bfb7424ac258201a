"""A template with metadata, events and a short heartbeat for the device-API tests."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from backend.transfer.schemas import DeviceOut
from tests.support.provision import provision
from tests.support.stack import StackConfig


def rich_doc(
    offline_ignore_seconds: int = 0, heartbeat: int = 45, devices: int = 2, save_raw: bool = False
) -> dict[str, Any]:
    """The thermostat template plus metadata, described events and lifecycle settings
    (``save_raw``: every datastream keeps raw data)."""
    suffix = uuid.uuid4().hex[:8]
    name = f"Rich {suffix}"
    datastreams: list[dict[str, Any]] = [
        {"pin": "V0", "name": "Temperature", "type": "double", "min": -40, "max": 85},
        {"pin": "V1", "name": "Power", "type": "integer", "min": 0, "max": 1},
        {"pin": "V2", "name": "Label", "type": "string", "default": "none"},
        {"pin": "V3", "name": "Where", "type": "location"},
    ]
    return {
        "templates": [
            {
                "name": name,
                "heartbeat_interval": heartbeat,
                "offline_ignore_seconds": offline_ignore_seconds,
                "datastreams": [{**ds, "save_raw": save_raw} for ds in datastreams],
                "events": [
                    {"code": "overheat", "name": "Overheat", "type": "warning", "description": "Too hot"},
                    {"code": "door", "name": "Door", "type": "info"},
                ],
                "metadata": [
                    {"name": "Serial Number", "type": "text", "default": "unset"},
                    {"name": "Count", "type": "number"},
                    {"name": "Contact", "type": "contact", "default": "ops@example.com"},
                ],
            }
        ],
        "devices": [{"name": f"Rich {suffix} {i}", "template": name} for i in range(devices)],
    }


def provision_rich(stack: StackConfig, **kwargs: Any) -> list[DeviceOut]:
    """Fresh devices of a fresh rich template."""
    return provision(stack.database_url, rich_doc(**kwargs)).devices


def query(stack: StackConfig, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows of a query on the stack's database."""
    with psycopg.connect(stack.database_url) as conn:
        return conn.execute(sql, args).fetchall()


def timeline(stack: StackConfig, device_id: int) -> list[tuple[Any, ...]]:
    """The device's timeline as (kind, code, type, description), oldest first."""
    return query(
        stack, "SELECT kind, code, type, description FROM device_event WHERE device_id = %s ORDER BY ts, id", device_id
    )
