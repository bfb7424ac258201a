"""Two tenants for cross-tenant tests: a parent organization P with two sibling children A and
B, each with its own administrator (invited and joined through the real e-mail link) and one
device of the README's thermostat template moved into it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from backend.transfer.schemas import DeviceOut
from tests.support.accounts import ADMIN, ROOT_ADMIN, AccountsStack, Api, invite_and_join
from tests.support.provision import provision_async, thermostat_doc


@dataclass
class Child:
    """One child organization: its id, its administrator's client and its device."""

    name: str
    org: int
    admin: Api
    device: DeviceOut

    @property
    def email(self) -> str:
        return f"admin-{self.name}@example.com"


@dataclass
class TwoTenants:
    acc: AccountsStack
    root: Api
    parent: int
    a: Child
    b: Child
    template: int
    """The database id of the devices' template (it stays in the root organization)."""

    def close(self) -> None:
        """Close the clients made here (root's and both administrators')."""
        for api in (self.root, self.a.admin, self.b.admin):
            api.close()


def two_tenants(acc: AccountsStack, save_raw: bool = False) -> TwoTenants:
    """Build P, A and B on ``acc`` (``save_raw``: the template keeps raw points)."""
    root = acc.login(*ROOT_ADMIN)
    parent = root.post("/api/orgs", json={"name": "Parent"}).json()["id"]
    devices = asyncio.run(
        provision_async(acc.config.database_url, thermostat_doc(devices=2, save_raw=save_raw))
    ).devices
    with acc.db() as db:
        row = db.execute("SELECT template_id FROM device WHERE id = %s", (devices[0].id,)).fetchone()
    assert row is not None
    children = []
    for name, device in zip(("A", "B"), devices, strict=True):
        r = root.post("/api/orgs", json={"name": name, "parent_id": parent})
        assert r.status_code == 201, r.text
        org = r.json()["id"]
        admin = invite_and_join(acc, root, org, f"admin-{name}@example.com", ADMIN)
        r = root.post(f"/api/devices/{device.id}/move", json={"org_id": org})
        assert r.status_code == 200, r.text
        children.append(Child(name, org, admin, device))
    return TwoTenants(acc, root, parent, children[0], children[1], int(row[0]))
