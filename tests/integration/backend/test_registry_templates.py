"""The device registry reads a template's datastreams, events and metadata fields once for all
its devices within its time to live (issue #16: a fleet connecting at once cost four queries a
device), and again after a template change notice or once that time is over. Token lookups
that miss the cache at the same moment are made in one query."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from backend.db.engine import Database
from backend.devices.registry import DeviceRegistry
from backend.security import Secrets
from tests.support.provision import provision_async, thermostat_doc
from tests.support.stack import TEST_SECRET


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


class CountingPool:
    """The registry's pool, counting the connections it hands out (a query batch each)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.taken = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        self.taken += 1
        async with self.pool.connection() as conn:
            yield conn


async def test_token_lookups_at_the_same_moment_are_one_query(fresh_db: str) -> None:
    """30 devices connecting at once, one of them twice, and two unknown tokens: every lookup
    gets its own answer from one pool connection (one device query, then one template part);
    a lookup whose caller gave up (its connection went away) leaves the others answered."""
    devices = (await provision_async(fresh_db, thermostat_doc(devices=30))).devices
    secrets = Secrets(TEST_SECRET)
    async with Database(fresh_db) as db:
        pool = CountingPool(db.pool)
        registry = DeviceRegistry(pool, ttl=60.0)  # type: ignore[arg-type]
        tokens = [d.token for d in devices] + [devices[0].token, "unknown-1", "unknown-2"]
        lookups = [asyncio.ensure_future(registry.by_token_hmac(secrets.token_hmac(t))) for t in tokens]
        lookups[5].cancel()
        results = await asyncio.gather(*lookups, return_exceptions=True)
        assert isinstance(results[5], asyncio.CancelledError)
        answered = [r.id if r is not None else None for i, r in enumerate(results) if i != 5]  # type: ignore[union-attr]
        ids = [d.id for i, d in enumerate(devices) if i != 5]
        assert answered == [*ids, devices[0].id, None, None]
        assert pool.taken == 1
        again = await registry.by_token_hmac(secrets.token_hmac(devices[7].token))  # cached now
        assert again is not None and again.id == devices[7].id and pool.taken == 1
        late = await registry.by_token_hmac(secrets.token_hmac(devices[5].token))  # its lookup was cancelled
        assert late is not None and late.id == devices[5].id and pool.taken == 2
