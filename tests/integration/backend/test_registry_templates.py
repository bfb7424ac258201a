"""The device registry reads a template's datastreams, events and metadata fields once for all
its devices within its time to live (issue #16: a fleet connecting at once cost four queries a
device), and again after a template change notice or once that time is over. Lookups (by
token, by id) that miss the cache at the same moment are made in one query."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from backend.db.engine import Database
from backend.devices.registry import GATHER_PATIENCE, DeviceRegistry, TokenHolder
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


def device_orgs(url: str) -> dict[int, int]:
    """Each device's organization, by device id."""
    with psycopg.connect(url) as conn:
        return {int(i): int(o) for i, o in conn.execute("SELECT id, org_id FROM device").fetchall()}


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
    gets its own answer, the device's id and organization, from one pool connection (one
    query; no device entry is built); a lookup whose caller gave up (its connection went away)
    leaves the others answered."""
    devices = (await provision_async(fresh_db, thermostat_doc(devices=30))).devices
    orgs = device_orgs(fresh_db)
    secrets = Secrets(TEST_SECRET)
    async with Database(fresh_db) as db:
        pool = CountingPool(db.pool)
        registry = DeviceRegistry(pool, ttl=60.0)  # type: ignore[arg-type]
        tokens = [d.token for d in devices] + [devices[0].token, "unknown-1", "unknown-2"]
        lookups = [asyncio.ensure_future(registry.holder(secrets.token_hmac(t))) for t in tokens]
        lookups[5].cancel()
        results = await asyncio.gather(*lookups, return_exceptions=True)
        assert isinstance(results[5], asyncio.CancelledError)
        answered = [r for i, r in enumerate(results) if i != 5]
        holders = [TokenHolder(d.id, orgs[d.id]) for i, d in enumerate(devices) if i != 5]
        assert answered == [*holders, TokenHolder(devices[0].id, orgs[devices[0].id]), None, None]
        assert pool.taken == 1
        assert registry.cached(devices[0].id) is None  # what a login needs, not the device's entry
        again = await registry.holder(secrets.token_hmac(devices[7].token))  # cached now
        assert again == TokenHolder(devices[7].id, orgs[devices[7].id]) and pool.taken == 1
        late = await registry.holder(secrets.token_hmac(devices[5].token))  # its lookup was cancelled
        assert late is not None and late.id == devices[5].id and pool.taken == 2


async def test_device_lookups_at_the_same_moment_are_one_query(fresh_db: str) -> None:
    """The entries of 20 devices and of one that does not exist, asked for at once: one pool
    connection (the devices' query and their template's part)."""
    devices = (await provision_async(fresh_db, thermostat_doc(devices=20))).devices
    async with Database(fresh_db) as db:
        pool = CountingPool(db.pool)
        registry = DeviceRegistry(pool, ttl=60.0)  # type: ignore[arg-type]
        missing = max(d.id for d in devices) + 1000
        found = await asyncio.gather(*(registry.get(i) for i in [d.id for d in devices] + [missing]))
        assert [f.id if f is not None else None for f in found] == [*(d.id for d in devices), None]
        assert all(f is not None and set(f.by_name) == set(found[0].by_name) for f in found[:-1])  # type: ignore[union-attr]
        assert pool.taken == 1


async def test_a_device_by_its_token_is_its_whole_entry(fresh_db: str) -> None:
    """The device API's lookup: the token's holder, then the device's entry (a query each for
    a fleet asking at once), the same entry as by id."""
    devices = (await provision_async(fresh_db, thermostat_doc(devices=10))).devices
    secrets = Secrets(TEST_SECRET)
    async with Database(fresh_db) as db:
        pool = CountingPool(db.pool)
        registry = DeviceRegistry(pool, ttl=60.0)  # type: ignore[arg-type]
        found = await asyncio.gather(*(registry.by_token_hmac(secrets.token_hmac(d.token)) for d in devices))
        assert [f.id if f is not None else None for f in found] == [d.id for d in devices]
        assert pool.taken == 2
        assert found[3] is await registry.get(devices[3].id) and found[3] is not None and found[3].by_name
        assert await registry.by_token_hmac(secrets.token_hmac("unknown")) is None


async def test_a_lookup_made_a_turn_after_another_joins_its_query(fresh_db: str) -> None:
    """A query waits a turn or two of the event loop for more lookups (a connect storm's
    batches double; an idle loop turns in microseconds)."""
    first, second = (await provision_async(fresh_db, thermostat_doc(devices=2))).devices
    secrets = Secrets(TEST_SECRET)
    async with Database(fresh_db) as db:
        pool = CountingPool(db.pool)
        registry = DeviceRegistry(pool, ttl=60.0)  # type: ignore[arg-type]
        early = asyncio.ensure_future(registry.holder(secrets.token_hmac(first.token)))
        await asyncio.sleep(0)  # the first lookup starts its query's task
        late = asyncio.ensure_future(registry.holder(secrets.token_hmac(second.token)))
        assert [h.id if h is not None else None for h in await asyncio.gather(early, late)] == [first.id, second.id]
        assert pool.taken == 1


async def test_token_lookups_that_keep_coming_join_one_query_until_they_pause(fresh_db: str) -> None:
    """In a connect storm logins arrive a few each turn of the event loop: the query waits
    while they keep coming (up to GATHER_TURNS turns) and goes once GATHER_PATIENCE turns in
    a row bring none, so a lookup after that pause is the next query's."""
    devices = (await provision_async(fresh_db, thermostat_doc(devices=8))).devices
    secrets = Secrets(TEST_SECRET)
    async with Database(fresh_db) as db:
        pool = CountingPool(db.pool)
        registry = DeviceRegistry(pool, ttl=60.0)  # type: ignore[arg-type]
        lookups = []
        for device in devices[:6]:  # one a turn for six turns: one query
            lookups.append(asyncio.ensure_future(registry.holder(secrets.token_hmac(device.token))))
            await asyncio.sleep(0)
        found = await asyncio.gather(*lookups)
        assert [h.id if h is not None else None for h in found] == [d.id for d in devices[:6]]
        assert pool.taken == 1
        first = asyncio.ensure_future(registry.holder(secrets.token_hmac(devices[6].token)))
        for _ in range(GATHER_PATIENCE + 1):
            await asyncio.sleep(0)  # a pause: the query of the first goes without waiting longer
        second = asyncio.ensure_future(registry.holder(secrets.token_hmac(devices[7].token)))
        assert [h.id if h is not None else None for h in await asyncio.gather(first, second)] == [
            devices[6].id,
            devices[7].id,
        ]
        assert pool.taken == 3
