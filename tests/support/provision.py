"""Create templates and devices in a test database through the real import service."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec

from backend.db.engine import Database
from backend.orgs.services import OrgService
from backend.security import Secrets
from backend.transfer.schemas import Document, ImportResult
from backend.transfer.services import TransferService
from tests.support.stack import TEST_SECRET


def thermostat_doc(suffix: str | None = None, devices: int = 1, save_raw: bool = False) -> dict[str, Any]:
    """The README's example document, with unique names so tests can share a database.

    ``save_raw`` turns on Blynk's "Save Raw Data" for every datastream (tests about raw points);
    without it numbers are kept only as per-minute and per-hour rollups, as on Blynk.
    """
    suffix = suffix or uuid.uuid4().hex[:8]
    datastreams: list[dict[str, Any]] = [
        {"pin": "V0", "name": "Temperature", "type": "double", "min": -40, "max": 85},
        {"pin": "V1", "name": "Power", "type": "integer", "min": 0, "max": 1, "sync": True},
        {"pin": "V2", "name": "Label", "type": "string", "default": "none"},
        {"pin": "V3", "name": "Where", "type": "location"},
    ]
    return {
        "templates": [
            {
                "name": f"Thermostat {suffix}",
                "datastreams": [{**ds, "save_raw": save_raw} for ds in datastreams],
                "events": [{"code": "overheat", "name": "Overheat", "type": "warning"}],
            }
        ],
        "devices": [{"name": f"Kitchen {suffix} {i}", "template": f"Thermostat {suffix}"} for i in range(devices)],
    }


async def provision_async(url: str, doc: dict[str, Any]) -> ImportResult:
    """Import ``doc`` into the root organization of the database at ``url``."""
    document = msgspec.convert(doc, Document)
    async with Database(url, pool_size=1) as db:
        async with db.session() as session:
            root = await OrgService(session).ensure_root("admin@test.local", "admin-password-123")
            assert root.id is not None
            return await TransferService(session, Secrets(TEST_SECRET)).import_document(root.id, document)


def provision(url: str, doc: dict[str, Any]) -> ImportResult:
    """Synchronous :func:`provision_async` (for sync tests)."""
    return asyncio.run(provision_async(url, doc))
