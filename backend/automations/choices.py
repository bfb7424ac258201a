"""What the automation editor offers to pick from: the things an automation of one organization
may name (its reach, :mod:`backend.automations.refs`): devices, templates with their
datastreams and events, tags, users (only to callers who may see users) and webhooks."""

from __future__ import annotations

from collections import defaultdict

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Permission, Principal
from backend.automations.refs import Reach
from backend.db.sql import fetch_all, fetch_one

MAX_CHOICES = 2000
"""At most this many devices (and users) are offered; the editor is not a device browser."""


class DatastreamChoice(msgspec.Struct):
    pin: int
    name: str
    type: str


class EventChoice(msgspec.Struct):
    code: str
    name: str


class TemplateChoice(msgspec.Struct):
    id: int
    name: str
    datastreams: list[DatastreamChoice]
    events: list[EventChoice]


class DeviceChoice(msgspec.Struct):
    id: int
    name: str
    template_id: int


class NamedChoice(msgspec.Struct):
    id: int
    name: str


class Choices(msgspec.Struct):
    """Everything the editor's pickers list, for one organization."""

    org_id: int
    tz: str
    devices: list[DeviceChoice]
    templates: list[TemplateChoice]
    tags: list[str]
    users: list[NamedChoice]
    webhooks: list[NamedChoice]


async def choices(session: AsyncSession, principal: Principal, reach: Reach) -> Choices:
    """The pickers' lists for an automation of ``reach.org_id``."""
    orgs = sorted(reach.orgs)
    devices = await fetch_all(
        session,
        "SELECT id, name, template_id FROM device WHERE org_id = ANY(:orgs) ORDER BY lower(name), id LIMIT :n",
        orgs=orgs,
        n=MAX_CHOICES,
    )
    templates = await fetch_all(
        session,
        "SELECT id, name FROM template WHERE org_id = ANY(:orgs) ORDER BY lower(name), id",
        orgs=sorted(reach.templates_from),
    )
    ids = [int(t["id"]) for t in templates]
    datastreams: dict[int, list[DatastreamChoice]] = defaultdict(list)
    for d in await fetch_all(
        session, "SELECT template_id, pin, name, type FROM datastream WHERE template_id = ANY(:t) ORDER BY pin", t=ids
    ):
        datastreams[int(d["template_id"])].append(DatastreamChoice(int(d["pin"]), d["name"], d["type"]))
    events: dict[int, list[EventChoice]] = defaultdict(list)
    for e in await fetch_all(
        session, "SELECT template_id, code, name FROM event_def WHERE template_id = ANY(:t) ORDER BY code", t=ids
    ):
        events[int(e["template_id"])].append(EventChoice(e["code"], e["name"]))
    tags = await fetch_all(
        session,
        "SELECT DISTINCT t.tag FROM device_tag t JOIN device d ON d.id = t.device_id "
        "WHERE d.org_id = ANY(:orgs) ORDER BY t.tag",
        orgs=orgs,
    )
    users = []
    if principal.has(Permission.USERS_VIEW):
        users = await fetch_all(
            session,
            "SELECT id, CASE WHEN name = '' THEN email ELSE name || ' <' || email || '>' END AS name FROM app_user "
            "WHERE org_id = ANY(:orgs) AND status = 'active' ORDER BY lower(email) LIMIT :n",
            orgs=orgs,
            n=MAX_CHOICES,
        )
    webhooks = await fetch_all(
        session, "SELECT id, name FROM webhook WHERE org_id = ANY(:orgs) ORDER BY lower(name), id", orgs=orgs
    )
    org = await fetch_one(session, "SELECT tz FROM organization WHERE id = :id", id=reach.org_id)
    return Choices(
        org_id=reach.org_id,
        tz=str(org["tz"]) if org else "UTC",
        devices=[DeviceChoice(int(d["id"]), d["name"], int(d["template_id"])) for d in devices],
        templates=[
            TemplateChoice(int(t["id"]), t["name"], datastreams[int(t["id"])], events[int(t["id"])]) for t in templates
        ],
        tags=[str(t["tag"]) for t in tags],
        users=[NamedChoice(int(u["id"]), u["name"]) for u in users],
        webhooks=[NamedChoice(int(w["id"]), w["name"]) for w in webhooks],
    )
