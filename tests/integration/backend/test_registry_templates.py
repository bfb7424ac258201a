"""The device registry reads a template's datastreams, events and metadata fields once for all
its devices within its time to live (issue #16: a fleet connecting at once cost four queries a
device), and again after a template change notice or once that time is over."""

from __future__ import annotations

import psycopg

from backend.db.engine import Database
from backend.devices.registry import DeviceRegistry
from tests.support.provision import provision_async, thermostat_doc


def add_datastream_unannounced(url: str, device_id: int) -> None:
    """A datastream added to the device's template with no change notice (as if by another
    process whose notice has not arrived yet)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO datastream (template_id, pin, name, type) "
            "SELECT template_id, 200, 'Added', 'integer' FROM device WHERE id = %s",
            (device_id,),
        )


async def test_the_devices_of_a_template_share_its_part_until_a_change_or_the_ttl(fresh_db: str) -> None:
    first, second, third = (await provision_async(fresh_db, thermostat_doc(devices=3))).devices
    async with Database(fresh_db) as db:
        registry = DeviceRegistry(db.pool, ttl=60.0)
        before = await registry.get(first.id)
        assert before is not None and "Added" not in before.by_name
        add_datastream_unannounced(fresh_db, first.id)

        cached = await registry.get(second.id)  # a device not seen yet: its row is read, its template's part is not
        assert cached is not None and cached.id == second.id
        assert set(cached.by_name) == set(before.by_name)
        assert cached.by_name is not before.by_name  # each device its own maps

        registry.invalidate()  # what a template change notice does (DeviceRegistry.apply)
        after = await registry.get(second.id)
        assert after is not None and after.by_name["Added"].pin == 200 and after.by_pin[200].name == "Added"

        expiring = DeviceRegistry(db.pool, ttl=0.0)  # no time to live: every load reads the template
        assert (await expiring.get(third.id)) is not None
        assert "Added" in (await expiring.get(first.id)).by_name  # type: ignore[union-attr]
