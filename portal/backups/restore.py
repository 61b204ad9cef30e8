"""Restore a backup archive (see ``services`` for its layout): check every member against the
manifest first, refuse a target that is not empty, then write the database and the files."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from portal.backups.services import (
    CHUNK,
    KEY_FILES,
    MANIFEST,
    BackupError,
    Manifest,
    Member,
    code_revisions,
    database_tables,
    destination,
    instance_files,
    instance_path,
    restore_database,
)


def _regular_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for info in tar:
        if not info.isfile():
            raise BackupError(f"The archive holds {info.name!r}, which is not a plain file.")
        yield info


def check(archive: Path) -> Manifest:
    """Read the whole archive once: every member's SHA-256 and size against the manifest.
    Raises :class:`BackupError` naming the first difference."""
    seen: dict[str, Member] = {}
    raw_manifest = None
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for info in _regular_members(tar):
                fh = tar.extractfile(info)
                assert fh is not None
                if info.name == MANIFEST:
                    raw_manifest = fh.read()
                    continue
                digest, size = hashlib.sha256(), 0
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                seen[info.name] = Member(info.name, size, digest.hexdigest())
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"{archive} cannot be read as a backup archive: {exc}.") from exc
    if raw_manifest is None:
        raise BackupError(f"{archive} holds no {MANIFEST}: not a complete backup.")
    try:
        manifest = Manifest.from_json(raw_manifest)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"The manifest of {archive} cannot be read: {exc}.") from exc
    expected = {m.name: m for m in manifest.files}
    for name in sorted(expected.keys() | seen.keys()):
        want, got = expected.get(name), seen.get(name)
        if want is None:
            raise BackupError(f"{name} is in the archive but not in its manifest.")
        if got is None:
            raise BackupError(f"{name} is in the manifest but missing from the archive.")
        if (got.size, got.sha256) != (want.size, want.sha256):
            raise BackupError(f"{name} is damaged: SHA-256 {got.sha256} ({got.size} bytes), "
                              f"the manifest says {want.sha256} ({want.size} bytes).")
        if name != manifest.database_member:
            destination(name)  # refuses unsafe or unknown names before anything is written
    return manifest


def existing_instance_files() -> list[str]:
    """Files in this instance that a restore would not replace safely (keys a fresh instance
    makes on its first start and the empty database excepted)."""
    keys = {(instance_path() / name) for name in KEY_FILES}
    return [name for name, path in instance_files(skip=keys)]


def ensure_empty() -> None:
    tables = database_tables()
    if tables:
        shown = ", ".join(tables[:5]) + (" …" if len(tables) > 5 else "")
        raise BackupError(
            f"The database is not empty: it holds {len(tables)} tables ({shown}). A restore "
            "only goes into an empty database (not even `flask db upgrade` run): create a new "
            "one, or drop this one's tables if it is truly disposable.")
    files = existing_instance_files()
    if files:
        shown = ", ".join(files[:5]) + (" …" if len(files) > 5 else "")
        raise BackupError(
            f"The instance folder {instance_path()} already holds {len(files)} files ({shown}). "
            "A restore only goes into an empty instance: point INSTANCE_PATH (or the "
            "*_DIR settings) at empty folders.")


def restore(archive: Path) -> Manifest:
    """Check ``archive`` whole, refuse a non-empty target, then restore the database and the
    files. Nothing is written unless every digest matches."""
    if not archive.is_file():
        raise BackupError(f"{archive} does not exist.")
    manifest = check(archive)
    known = code_revisions()
    if manifest.schema_revision and manifest.schema_revision not in known:
        raise BackupError(f"The archive's schema revision {manifest.schema_revision} is "
                          "unknown to this portal's migrations: restore it with the portal "
                          f"version that made it ({manifest.portal_version}) or newer.")
    ensure_empty()
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(archive, mode="r:gz") as tar:
        for info in _regular_members(tar):
            if info.name == MANIFEST:
                continue
            fh = tar.extractfile(info)
            assert fh is not None
            if info.name == manifest.database_member:
                dump = Path(tmp) / "database"
                with dump.open("wb") as out:
                    shutil.copyfileobj(fh, out, CHUNK)
                restore_database(manifest.dialect, dump)
                dump.unlink()
                continue
            target = destination(info.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".restoring")
            with partial.open("wb") as out:
                shutil.copyfileobj(fh, out, CHUNK)
            os.chmod(partial, info.mode & 0o777)
            partial.replace(target)
    return manifest
