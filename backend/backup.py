"""``openblynk backup FILE`` and ``openblynk restore FILE``: the whole server in one tar.

The tar holds, in this order::

    database.dump      pg_dump of the project's database, custom format (one consistent snapshot)
    files/<path>       the data directory's files: secret.key, ota-signing-key.pem, tls/,
                       firmware/ and uploads/ (the PostgreSQL cluster itself is the dump)
    manifest.json      format, versions, and the size and SHA-256 of every member above

A backup runs while the system runs: pg_dump reads one snapshot of the database without
blocking writers, and the files are copied after it, so every firmware image and upload the
dump names is in the tar (firmware files are named by their SHA-256 and never rewritten). The
tar is written next to FILE and renamed into place when complete, readable by its owner only:
it holds the secret key and every device token's key. When that disk fills up, the partial tar
and the dump are removed and the command fails with "the disk is full" (exit code 2).

A restore refuses a data directory that is not empty (and a configured database that has
tables), checks every member against the manifest before anything is placed, puts the files
back, restores the dump into the embedded PostgreSQL of the new data directory (or into
``OPENBLYNK_DATABASE_URL``) with the pg_restore of the same release as the embedded server,
then migrates it: a backup of an older version comes back as the current one.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import psycopg

from backend.db.embedded import bin_dir
from backend.db.migrate import current_version
from backend.errors import ConfigError, DatabaseError, StorageFullError, disk_full
from backend.runtime import database, prepare
from backend.settings import Settings

FORMAT = 1
DUMP = "database.dump"
MANIFEST = "manifest.json"
FILES = ("secret.key", "ota-signing-key.pem", "tls", "firmware", "uploads")
"""What of the data directory a backup keeps (exports, mail and logs are not kept)."""
CHUNK = 1 << 20
Say = Callable[[str], None]


def backup(settings: Settings, url: str, target: Path, say: Say) -> None:
    """Write the database and the data directory's files to the tar ``target``."""
    target = target.resolve()
    partial = target.with_name(f".{target.name}.partial")
    try:
        _write(settings, url, target, partial, say)
    except BaseException as exc:
        partial.unlink(missing_ok=True)  # never a half-written backup next to FILE
        if disk_full(exc):
            raise StorageFullError(f"the backup {target.name}", f"the file system of {target.parent}") from None
        raise


def _write(settings: Settings, url: str, target: Path, partial: Path, say: Say) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".openblynk-backup-") as tmp:
        dump = Path(tmp) / DUMP
        say("dumping the database (pg_dump: one consistent snapshot)...")
        _tool("pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}", f"--dbname={url}")
        say(f"  database: {_size(dump.stat().st_size)}")
        members: dict[str, dict[str, object]] = {}
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            members[DUMP] = _add(tar, dump, DUMP)
            files = list(_data_files(settings.data_dir))
            say(f"adding {len(files)} files of {settings.data_dir} ...")
            for rel in files:
                members[f"files/{rel}"] = _add(tar, settings.data_dir / rel, f"files/{rel}")
            manifest = {
                "format": FORMAT,
                "created": datetime.now(UTC).isoformat(),
                "openblynk": _version(),
                "schema_version": current_version(url),
                "members": members,
            }
            body = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(datetime.now(UTC).timestamp()), 0o600
            tar.addfile(info, io.BytesIO(body))
        os.replace(partial, target)
    total = sum(int(str(m["size"])) for m in members.values())
    say(f"wrote {target}: the database and {len(members) - 1} files, {_size(total)}")


def restore(settings: Settings, source: Path, say: Say) -> None:
    """Restore the tar ``source`` into an empty data directory (and an empty database)."""
    data_dir = settings.data_dir.resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        raise ConfigError(
            f"the data directory {data_dir} is not empty — a restore never overwrites a server; "
            "set OPENBLYNK_DATA_DIR to a new or empty directory"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir.parent, prefix=".openblynk-restore-") as tmp:
        staging = Path(tmp)
        say(f"reading {source} ...")
        manifest = _unpack(source, staging)
        say(f"  checked {len(manifest['members'])} members against the manifest (backup of {manifest['created']})")
        files = staging / "files"
        if files.is_dir():
            for entry in files.iterdir():
                shutil.move(entry, data_dir / entry.name)
        say("restoring the database (pg_restore)...")
        with database(settings, own=True) as url:
            _refuse_tables(url)
            _tool(
                "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={url}", str(staging / DUMP)
            )
            asyncio.run(prepare(settings, url))
    say(f"restored into {data_dir}; start it with `openblynk serve`")


def _unpack(source: Path, staging: Path) -> dict[str, dict[str, object]]:
    """Extract ``source`` into ``staging`` (plain files and directories inside it only) and
    check every member against the manifest; the manifest."""
    try:
        with tarfile.open(source) as tar:
            tar.extractall(staging, filter="data")
        manifest = json.loads((staging / MANIFEST).read_text())
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise ConfigError(
            f"{source} is not an openblynk backup ({exc}) — give the FILE `openblynk backup` wrote"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{source} has a backup format this version does not read (it reads format {FORMAT})")
    members = manifest["members"]
    found = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()} - {MANIFEST}
    if found != set(members):
        raise ConfigError(f"{source} is incomplete or has unexpected files: {sorted(found ^ set(members))[:5]}")
    for name, meta in members.items():
        if _sha256(staging / name) != meta["sha256"]:
            raise ConfigError(f"{source}: {name} does not match its checksum — the backup is damaged")
    return manifest


def _refuse_tables(url: str) -> None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()
    if row and row[0]:
        raise ConfigError("the database already has tables — restore into an empty database (OPENBLYNK_DATABASE_URL)")


def _data_files(data_dir: Path) -> Iterator[str]:
    """The relative paths of the kept files of ``data_dir``, sorted."""
    for name in FILES:
        path = data_dir / name
        if path.is_file():
            yield name
        elif path.is_dir():
            yield from sorted(p.relative_to(data_dir).as_posix() for p in path.rglob("*") if p.is_file())


def _add(tar: tarfile.TarFile, path: Path, name: str) -> dict[str, object]:
    """Add one file, hashing it as it is read (what is in the tar is what is hashed)."""
    info = tar.gettarinfo(str(path), arcname=name)
    with open(path, "rb") as fh:
        hashing = _Hashing(fh)
        tar.addfile(info, hashing)
    return {"size": info.size, "sha256": hashing.digest.hexdigest()}


class _Hashing:
    """A file read through a SHA-256."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.digest.update(data)
        return data


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tool(name: str, *args: str) -> None:
    """Run the embedded PostgreSQL release's ``name`` (pg_dump, pg_restore)."""
    result = subprocess.run([str(bin_dir() / name), *args], capture_output=True, text=True)
    if result.returncode != 0 and "No space left on device" in result.stderr:
        raise OSError(errno.ENOSPC, f"{name}: No space left on device")
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[0]
        raise DatabaseError(f"{name} failed: {first}")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _version() -> str:
    try:
        return importlib.metadata.version("openblynk")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
