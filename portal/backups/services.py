"""Write and restore a backup archive.

The archive is a gzipped tar: the database (a SQLite copy made with the online backup API, or
a ``pg_dump`` custom-format dump), every file of the instance folder (PDFs, evidence, imports,
export archives, payout results, the public snapshot, the key files, the audit checkpoint
file) and the folders the configuration puts elsewhere, and last ``manifest.json``: each
member's SHA-256 and size, the schema revision, the portal version. Files are streamed in and
out (memory stays flat); a restore checks every digest before it writes anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from flask import current_app
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url

from portal.extensions import db

FORMAT = "aftercare-backup/1"
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024
# Folders and files the configuration may place outside the instance folder, with their place
# inside it when the setting is not given (portal/config.py and the ``instance_folder`` calls).
LOCATED_SETTINGS = {"PDF_DIR": "pdf", "EVIDENCE_DIR": "evidence", "IMPORT_DIR": "imports",
                    "PAYOUT_RESULT_DIR": "payout-results",
                    "PUBLIC_SNAPSHOT_DIR": "public-snapshot",
                    "AUDIT_CHECKPOINT_FILE": "audit-checkpoints.jsonl"}
# Keys kept as instance files in development (portal/config.py): a fresh instance has them
# already (made on first start), and a restore replaces them with the archive's.
KEY_FILES = ("secret_key", "erasure_key", "audit_hmac_key", "audit_signing_key",
             "verification_key", "payout_details_key")
# Where ``backup`` writes when no path is given; never itself backed up.
BACKUP_FOLDER = "backups"


class BackupError(RuntimeError):
    """The backup or restore cannot go on; the message says why and what to do."""


@dataclass
class Member:
    name: str
    size: int
    sha256: str


@dataclass
class Manifest:
    created_at: str
    portal_version: str
    schema_revision: str | None
    dialect: str
    database_member: str
    files: list[Member] = field(default_factory=list)
    keys_from_environment: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        data = {"format": FORMAT, "created_at": self.created_at,
                "portal_version": self.portal_version,
                "schema_revision": self.schema_revision,
                "database": {"dialect": self.dialect, "member": self.database_member},
                "keys_from_environment": self.keys_from_environment,
                "files": [vars(m) for m in self.files]}
        return json.dumps(data, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise BackupError(f"Not an Aftercare backup of format {FORMAT} "
                              f"(manifest says {data.get('format')!r}).")
        return cls(created_at=data["created_at"], portal_version=data["portal_version"],
                   schema_revision=data["schema_revision"],
                   dialect=data["database"]["dialect"],
                   database_member=data["database"]["member"],
                   files=[Member(**m) for m in data["files"]],
                   keys_from_environment=data.get("keys_from_environment", []))


def portal_version() -> str:
    try:
        return metadata.version("aftercare")
    except metadata.PackageNotFoundError:
        return "unknown"


def schema_revision() -> str | None:
    """The database's Alembic revision (``alembic_version``), None before any migration."""
    if "alembic_version" not in inspect(db.engine).get_table_names():
        return None
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def code_revisions() -> set[str]:
    """Every revision this code's migrations know."""
    from alembic.script import ScriptDirectory

    directory = current_app.extensions["migrate"].directory
    script = ScriptDirectory(directory)
    return {rev.revision for rev in script.walk_revisions()}


# --- which files -------------------------------------------------------------------------------

def instance_path() -> Path:
    return Path(current_app.instance_path).resolve()


def _database_files() -> set[Path]:
    """The SQLite database file (and its journals): copied through the backup API instead."""
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "sqlite" or not url.database:
        return set()
    path = Path(url.database).resolve()
    return {path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))}


def _walk(root: Path, skip: set[Path]) -> Iterator[Path]:
    """Regular files under ``root`` (sorted, so two backups list them alike), but ``skip``."""
    if root.is_file():
        if root.resolve() not in skip:
            yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if (here / d).resolve() not in skip)
        for name in sorted(filenames):
            path = here / name
            if path.is_file() and not path.is_symlink() and path.resolve() not in skip:
                yield path


def _located(setting: str) -> Path | None:
    """Where ``setting`` puts its folder/file, when that is outside the instance folder."""
    value = current_app.config.get(setting)
    if not value:
        return None
    path = Path(value).resolve()
    return None if path.is_relative_to(instance_path()) else path


def instance_files(skip: set[Path] = frozenset()) -> Iterator[tuple[str, Path]]:  # type: ignore[assignment]
    """(archive member name, path) of every file a backup holds, the database apart."""
    instance = instance_path()
    skip = set(skip) | _database_files() | {instance / BACKUP_FOLDER}
    for path in _walk(instance, skip):
        yield "instance/" + path.relative_to(instance).as_posix(), path
    for setting in LOCATED_SETTINGS:
        located = _located(setting)
        if located is None or not located.exists():
            continue
        if located.is_file():
            yield f"external/{setting}", located
            continue
        for path in _walk(located, skip):
            yield f"external/{setting}/{path.relative_to(located).as_posix()}", path


def destination(member: str) -> Path:
    """Where a restore writes ``member`` in this instance (refusing names that climb out)."""
    parts = member.split("/")
    if member.startswith("/") or ".." in parts or "" in parts:
        raise BackupError(f"The archive holds a file with an unsafe name: {member!r}.")
    kind, rest = parts[0], parts[1:]
    if kind == "instance" and rest:
        return instance_path().joinpath(*rest)
    if kind == "external" and rest and rest[0] in LOCATED_SETTINGS:
        setting = rest[0]
        base = Path(current_app.config.get(setting) or instance_path() / LOCATED_SETTINGS[setting])
        return base.joinpath(*rest[1:]) if rest[1:] else base
    raise BackupError(f"The archive holds a file this portal does not know: {member!r}.")


# --- streaming with a digest ------------------------------------------------------------------

class _Hashing:
    """A file wrapper that hashes what is read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def _add(tar: tarfile.TarFile, name: str, path: Path) -> Member:
    info = tar.gettarinfo(str(path), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    with path.open("rb") as fh:
        hashing = _Hashing(fh)
        tar.addfile(info, hashing)  # type: ignore[arg-type]
    return Member(name, hashing.size, hashing.digest.hexdigest())


# --- the database -------------------------------------------------------------------------------

def _pg_env(url: URL) -> dict[str, str]:
    """libpq's environment for ``url`` (the password never appears on a command line)."""
    env = dict(os.environ)
    for key, value in (("PGHOST", url.host), ("PGPORT", url.port), ("PGUSER", url.username),
                       ("PGPASSWORD", url.password), ("PGDATABASE", url.database)):
        if value is not None:
            env[key] = str(value)
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not on PATH: install the PostgreSQL client programs "
                          f"(Debian: apt-get install postgresql-client, the version of the "
                          f"server or newer) and try again.")
    return found


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed ({done.returncode}): "
                          f"{done.stderr.strip()[-2000:]}")


def _dump_database(into: Path) -> tuple[str, str]:
    """A consistent copy of the database in the file ``into``; (dialect, member name)."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite":
        source = sqlite3.connect(url.database or ":memory:")
        target = sqlite3.connect(into)
        try:
            with target:
                source.backup(target)  # the online backup API: a snapshot, writers go on
        finally:
            target.close()
            source.close()
        return "sqlite", "database/aftercare.sqlite3"
    if url.get_backend_name() == "postgresql":
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
              f"--file={into}"], _pg_env(url))
        return "postgresql", "database/aftercare.pgdump"
    raise BackupError(f"Backups know SQLite and PostgreSQL, not {url.get_backend_name()}.")


def database_tables() -> list[str]:
    return sorted(inspect(db.engine).get_table_names())


def restore_database(dialect: str, dump: Path) -> None:
    url = db.engine.url
    if url.get_backend_name() != dialect:
        raise BackupError(f"The archive holds a {dialect} database; this portal uses "
                          f"{url.get_backend_name()}.")
    db.session.remove()
    db.engine.dispose()
    if dialect == "sqlite":
        source = sqlite3.connect(dump)
        target = sqlite3.connect(url.database or ":memory:")
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
        return
    _run([_tool("pg_restore"), "--single-transaction", "--exit-on-error", "--no-owner",
          "--no-privileges", f"--dbname={url.database}", str(dump)], _pg_env(url))


# --- backup -------------------------------------------------------------------------------------

def default_path() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return instance_path() / BACKUP_FOLDER / f"aftercare-{stamp}.tar.gz"


def backup(path: Path) -> Manifest:
    """Write the archive to ``path`` (which must not exist); its manifest."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        out = path.open("xb")  # never overwrite
    except FileExistsError as exc:
        raise BackupError(f"{path} exists already; backups never overwrite a file. "
                          "Give another path.") from exc
    manifest = Manifest(created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        portal_version=portal_version(), schema_revision=schema_revision(),
                        dialect="", database_member="",
                        keys_from_environment=[k.upper() for k in KEY_FILES
                                               if os.environ.get(k.upper(), "").strip()])
    try:
        with out, tarfile.open(fileobj=out, mode="w:gz") as tar, \
                tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            dump = Path(tmp) / "database"
            manifest.dialect, manifest.database_member = _dump_database(dump)
            manifest.files.append(_add(tar, manifest.database_member, dump))
            dump.unlink()
            for name, file in instance_files(skip={path, Path(tmp).resolve()}):
                manifest.files.append(_add(tar, name, file))
            raw = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(raw), int(datetime.now(UTC).timestamp())
            tar.addfile(info, io.BytesIO(raw))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return manifest


def describe(manifest: Manifest) -> dict[str, Any]:
    """What an archive holds, summed up per kind (for the command's output)."""
    kinds: dict[str, list[int]] = {}
    for member in manifest.files:
        parts = member.name.split("/")
        kind = parts[0] if parts[0] in ("database",) else "/".join(parts[:2])
        count_size = kinds.setdefault(kind, [0, 0])
        count_size[0] += 1
        count_size[1] += member.size
    return kinds
