"""Import and export of templates and devices through the real services and database."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from backend.errors import ConflictError, NotFoundError, ValidationError
from tests.support.provision import provision_async, thermostat_doc

FIXED = "abcdefghijklmnopqrstuvwxyz012345"


async def test_import_creates_template_datastreams_events_and_devices(fresh_db: str) -> None:
    doc = thermostat_doc("t1", devices=2)
    doc["devices"][0]["token"] = FIXED
    result = await provision_async(fresh_db, doc)
    assert [d.name for d in result.devices] == ["Kitchen t1 0", "Kitchen t1 1"]
    assert result.devices[0].token == FIXED
    assert result.devices[1].token != FIXED and len(result.devices[1].token) == 32
    assert result.devices[0].template_id.startswith("TMPL") and len(result.devices[0].template_id) == 12
    with psycopg.connect(fresh_db) as conn:
        ds = conn.execute("SELECT pin, name, type, min, max FROM datastream ORDER BY pin").fetchall()
        assert ds[:2] == [(0, "Temperature", "double", -40, 85), (1, "Power", "integer", 0, 1)]
        assert conn.execute("SELECT code, type FROM event_def").fetchall() == [("overheat", "warning")]
        stored = conn.execute("SELECT token_hmac, token_encrypted FROM device").fetchall()
    for hmac_value, encrypted in stored:  # the token itself is never stored in clear
        assert FIXED.encode() not in bytes(hmac_value) and FIXED not in encrypted


async def test_import_is_idempotent_and_updates_in_place(fresh_db: str) -> None:
    doc = thermostat_doc("t2")
    first = await provision_async(fresh_db, doc)
    doc["templates"][0]["datastreams"][0]["max"] = 50
    doc["templates"][0]["datastreams"].pop()  # drop V3
    second = await provision_async(fresh_db, doc)
    assert second.devices[0].id == first.devices[0].id and second.devices[0].token == first.devices[0].token
    assert not second.devices[0].created
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT max FROM datastream WHERE pin = 0").fetchone() == (50,)
        assert conn.execute("SELECT count(*) FROM datastream").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM template").fetchone() == (1,)


async def _export(url: str) -> dict[str, Any]:
    from backend.db.engine import Database
    from backend.orgs.services import OrgService
    from backend.security import Secrets
    from backend.transfer.services import TransferService
    from tests.support.stack import TEST_SECRET

    async with Database(url) as db:
        async with db.session() as session:
            root = await OrgService(session).root()
            assert root is not None and root.id is not None
            return dict(
                msgspec.to_builtins(await TransferService(session, Secrets(TEST_SECRET)).export_document(root.id))
            )


def _tags(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [
            (n, t)
            for n, t in conn.execute(
                "SELECT d.name, t.tag FROM device_tag t JOIN device d ON d.id = t.device_id ORDER BY 1, 2"
            ).fetchall()
        ]


async def test_export_round_trips(fresh_db: str) -> None:
    doc = thermostat_doc("t3")
    doc["devices"][0]["token"] = FIXED
    await provision_async(fresh_db, doc)
    out = await _export(fresh_db)
    assert out["devices"] == [{"name": "Kitchen t3 0", "template": "Thermostat t3", "token": FIXED}]
    names = [d["name"] for d in out["templates"][0]["datastreams"]]
    assert names == ["Temperature", "Power", "Label", "Where"]
    again = await provision_async(fresh_db, out)  # an export imports back unchanged
    assert again.devices[0].token == FIXED and not again.devices[0].created


async def test_device_tags_import_export_round_trip(fresh_db: str) -> None:
    doc = thermostat_doc("t6", devices=2)
    doc["devices"][0]["tags"] = [" Floor 2", "Zone B", "Floor 2"]
    await provision_async(fresh_db, doc)
    assert _tags(fresh_db) == [("Kitchen t6 0", "Floor 2"), ("Kitchen t6 0", "Zone B")]
    out = await _export(fresh_db)
    assert [d.get("tags") for d in out["devices"]] == [["Floor 2", "Zone B"], None]  # left out when none
    out["devices"][1]["tags"] = ["Zone B"]
    out["devices"][0].pop("tags")  # absent: the device keeps its tags
    await provision_async(fresh_db, out)
    assert _tags(fresh_db) == [("Kitchen t6 0", "Floor 2"), ("Kitchen t6 0", "Zone B"), ("Kitchen t6 1", "Zone B")]
    again = await _export(fresh_db)
    assert [d.get("tags") for d in again["devices"]] == [["Floor 2", "Zone B"], ["Zone B"]]
    again["devices"][0]["tags"] = []  # an empty list removes them
    await provision_async(fresh_db, again)
    assert _tags(fresh_db) == [("Kitchen t6 1", "Zone B")]
    bad = await _export(fresh_db)
    bad["devices"][1]["tags"] = ["ok", "line\nbreak"]
    with pytest.raises(ValidationError, match=r"device 'Kitchen t6 1': tag .* contains the control character U\+000A"):
        await provision_async(fresh_db, bad)
    assert _tags(fresh_db) == [("Kitchen t6 1", "Zone B")]


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda d: d["devices"][0].update(template="Nope"), NotFoundError),
        (
            lambda d: d["templates"][0]["datastreams"].append({"pin": "V0", "name": "Dup", "type": "double"}),
            ValidationError,
        ),
        (lambda d: d["templates"][0]["datastreams"].append({"pin": "V9", "name": "Temperature"}), ValidationError),
    ],
)
async def test_bad_documents_change_nothing(fresh_db: str, mutate, error) -> None:  # type: ignore[no-untyped-def]
    doc = thermostat_doc("t4")
    mutate(doc)
    with pytest.raises(error):
        await provision_async(fresh_db, doc)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM template").fetchone() == (0,)


async def test_a_token_belongs_to_one_device(fresh_db: str) -> None:
    doc = thermostat_doc("t5", devices=2)
    for d in doc["devices"]:
        d["token"] = FIXED
    with pytest.raises(ConflictError):
        await provision_async(fresh_db, doc)


def test_document_schema_refuses_bad_fields() -> None:
    from backend.transfer.schemas import decode_document

    with pytest.raises(msgspec.ValidationError, match="token"):
        decode_document(b'{"devices": [{"name": "a", "template": "b", "token": "short"}]}')
    with pytest.raises(msgspec.ValidationError, match="colour"):
        decode_document(b'{"templates": [{"name": "a", "colour": 1}]}')


WIDGETS: list[dict[str, Any]] = [
    {"id": "temp", "type": "gauge", "pin": 0, "x": 0, "y": 0, "w": 3, "h": 3, "title": "Now", "min": 0, "max": 40},
    {
        "id": "power",
        "type": "switch",
        "pin": 1,
        "x": 3,
        "y": 0,
        "w": 3,
        "h": 2,
        "on": "1",
        "off": "0",
        "color": "#23c48e",
    },
    {"id": "label", "type": "terminal", "pin": 2, "x": 6, "y": 0, "w": 6, "h": 4},
    {"id": "where", "type": "map", "pin": 3, "x": 0, "y": 4, "w": 4, "h": 3},
    {"id": "push", "type": "button", "pin": 1, "x": 4, "y": 4, "w": 2, "h": 2, "mode": "switch"},
]


MOBILE: list[dict[str, Any]] = [
    {"id": "chart", "type": "chart", "pin": 0, "w": 4, "h": 2, "period": "6h"},
    {"id": "power", "type": "switch", "pin": 1, "title": "Heating"},
    {"id": "label", "type": "terminal", "pin": 2, "w": 4},
    {"id": "where", "type": "map", "pin": 3},
]


def _rich_doc(suffix: str) -> dict[str, Any]:
    """The example document with every part a template can carry set to something not default."""
    doc = thermostat_doc(suffix, devices=2)
    template = doc["templates"][0]
    template.update(
        id="TMPLround001",
        description="round trip",
        hardware="Raspberry Pi",
        heartbeat_interval=60,
        offline_ignore_seconds=30,
        raw_retention_days=7,
        rollup_retention_days=400,
        metadata=[{"name": "Serial Number", "type": "text", "default": "n/a"}],
        web_dashboard={"widgets": WIDGETS},
        mobile_dashboard={"widgets": MOBILE},
    )
    template["datastreams"][0].update(units="°C", decimals=1, save_raw=True, alias="Temp")
    template["datastreams"][1].update(wait_confirmation=True, default=0)
    template["events"].append({"code": "door", "name": "Door opened", "description": "the lid"})
    doc["devices"][0].update(token=FIXED, tags=["Floor 2"])
    return doc


@pytest.fixture
def empty_db(pg_server: str, template_db: str, fresh_db: str) -> Iterator[str]:
    """A second new, migrated, empty database: the other installation of a round trip."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    base, _, query = fresh_db.partition("?")
    yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_an_export_imported_into_an_empty_installation_exports_the_same(fresh_db: str, empty_db: str) -> None:
    await provision_async(fresh_db, _rich_doc("t7"))
    first = await _export(fresh_db)
    assert [w["id"] for w in first["templates"][0]["web_dashboard"]["widgets"]] == [
        "temp",
        "power",
        "label",
        "where",
        "push",
    ]
    assert first["templates"][0]["mobile_dashboard"] == {"widgets": MOBILE}  # in its order, defaults left out
    await provision_async(empty_db, first)
    second = await _export(empty_db)
    assert msgspec.json.encode(second) == msgspec.json.encode(first)


async def test_import_replaces_the_dashboard_and_keeps_it_when_absent(fresh_db: str) -> None:
    doc = _rich_doc("t8")
    await provision_async(fresh_db, doc)
    doc["templates"][0]["web_dashboard"] = {"widgets": WIDGETS[:2]}  # replaced
    await provision_async(fresh_db, doc)
    assert [w["id"] for w in (await _export(fresh_db))["templates"][0]["web_dashboard"]["widgets"]] == ["temp", "power"]
    del doc["templates"][0]["web_dashboard"]  # absent: kept, but for widgets of removed datastreams
    del doc["templates"][0]["mobile_dashboard"]
    doc["templates"][0]["datastreams"] = doc["templates"][0]["datastreams"][:1]
    await provision_async(fresh_db, doc)
    assert [w["id"] for w in (await _export(fresh_db))["templates"][0]["web_dashboard"]["widgets"]] == ["temp"]
    doc["templates"][0]["web_dashboard"] = {"widgets": []}  # empty: cleared
    await provision_async(fresh_db, doc)
    assert (await _export(fresh_db))["templates"][0]["web_dashboard"] == {"widgets": []}


async def test_import_replaces_the_mobile_dashboard_and_keeps_it_when_absent(fresh_db: str) -> None:
    doc = _rich_doc("t10")
    await provision_async(fresh_db, doc)
    del doc["templates"][0]["mobile_dashboard"]  # absent: kept, but for widgets of removed datastreams
    doc["templates"][0]["datastreams"] = doc["templates"][0]["datastreams"][:2]
    doc["templates"][0]["web_dashboard"] = {"widgets": WIDGETS[:2]}
    await provision_async(fresh_db, doc)
    mobile = (await _export(fresh_db))["templates"][0]["mobile_dashboard"]
    assert [w["id"] for w in mobile["widgets"]] == ["chart", "power"]
    doc["templates"][0]["mobile_dashboard"] = {"widgets": [{"id": "m", "type": "map", "pin": 1}]}
    with pytest.raises(ValidationError, match=re.escape("mobile dashboard: widget 'm' (map): cannot show datastream")):
        await provision_async(fresh_db, doc)
    doc["templates"][0]["mobile_dashboard"] = {"widgets": []}  # empty: cleared
    await provision_async(fresh_db, doc)
    assert (await _export(fresh_db))["templates"][0]["mobile_dashboard"] == {"widgets": []}


@pytest.mark.parametrize(
    ("widget", "error"),
    [
        (
            {"id": "w9", "type": "gauge", "pin": 9, "x": 0, "y": 6, "w": 3, "h": 2, "title": "Boiler"},
            "template 'Thermostat t9': web dashboard: widget 'Boiler' (gauge): the template has no datastream on V9",
        ),
        (
            {"id": "w9", "type": "chart", "pin": 2, "x": 0, "y": 6, "w": 3, "h": 2},
            "template 'Thermostat t9': web dashboard: widget 'w9' (chart): cannot show datastream 'Label' of type string",
        ),
        ({"id": "w9", "type": "value", "pin": 0, "x": 1, "y": 1, "w": 3, "h": 2}, "widgets 'Now' and 'w9' overlap"),
    ],
)
async def test_a_bad_widget_is_refused_by_name_and_nothing_is_imported(
    fresh_db: str, widget: dict[str, Any], error: str
) -> None:
    doc = _rich_doc("t9")
    doc["templates"][0]["web_dashboard"]["widgets"] = [*WIDGETS, widget]
    with pytest.raises(ValidationError, match=re.escape(error)):
        await provision_async(fresh_db, doc)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM template").fetchone() == (0,)


async def test_the_example_document_imports_with_its_dashboard(fresh_db: str) -> None:
    example = (Path(__file__).resolve().parents[3] / "examples" / "thermostat.json").read_bytes()
    await provision_async(fresh_db, msgspec.json.decode(example))
    template = (await _export(fresh_db))["templates"][0]
    widgets = template["web_dashboard"]["widgets"]
    assert sorted(w["type"] for w in widgets) == ["chart", "gauge", "switch", "terminal", "value"]
    mobile = template["mobile_dashboard"]["widgets"]
    assert [w["type"] for w in mobile] == ["gauge", "switch", "value", "chart", "terminal"]
