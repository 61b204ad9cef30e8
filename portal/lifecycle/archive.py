"""The export archive format: writing it, and verifying it with the standard library only.

An archive is one ZIP file::

    manifest.json            every other file with its SHA-256 and size
    event.json               the event's full record
    customers.csv, cases.csv, payments.csv, mailing_recipients.csv
    programme_members.csv    the members of the event's programmes (no bank details)
    payout_lines.csv         the lines of the payout batches (no bank details); event.json
                             holds the programmes, batches, files' hashes and bank results
    pdfs/<sha256>.pdf        the PDFs of the event's notices
    audit.jsonl              the audit entries about the event and its subjects, one a line,
                             with every field their chain hash covers

This module imports nothing from the portal, Flask or SQLAlchemy, so it can be copied next to
an archive and run anywhere (``python archive.py FILE``), years after the portal is gone.
``entry_hash`` must therefore repeat ``portal.audit.services.compute_hash`` exactly; a test
holds the two together.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

FORMAT = "aftercare-event-archive/1"
MANIFEST = "manifest.json"
AUDIT = "audit.jsonl"
GENESIS_HASH = "0" * 64
# The fields an audit entry's hash covers (created_at as "%Y-%m-%dT%H:%M:%S.%fZ" in UTC).
HASHED_FIELDS = ("created_at", "actor_id", "actor_label", "action", "subject_type",
                 "subject_id", "summary", "before", "after", "ip", "prev_hash")
# Hashed too, but only when the entry has a message key (entries written before keys lack it).
MESSAGE_FIELDS = ("message_key", "message_params")
# Hashed when set: the further subjects of an entry about many (a chunk of payments).
CONCERNS = "concerns"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def entry_hash(entry: dict[str, Any]) -> str:
    """The chain hash of an exported audit entry, recomputed from its fields."""
    payload = {name: entry.get(name) for name in HASHED_FIELDS}
    if entry.get("message_key") is not None:
        payload.update({name: entry.get(name) for name in MESSAGE_FIELDS})
    if entry.get(CONCERNS) is not None:
        payload[CONCERNS] = entry[CONCERNS]
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class ArchiveWriter:
    """Adds files to a ZIP while keeping their digests for the manifest."""

    def __init__(self, target: BinaryIO | Path) -> None:
        self._zip = zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED)
        self.files: list[dict[str, Any]] = []

    def add(self, name: str, data: bytes) -> None:
        self._zip.writestr(name, data)
        self.files.append({"path": name, "sha256": hashlib.sha256(data).hexdigest(),
                           "size": len(data)})

    def add_file(self, name: str, source: Path) -> None:
        digest, size = hashlib.sha256(), 0
        with source.open("rb") as src, self._zip.open(name, "w") as out:
            while chunk := src.read(1 << 16):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        self.files.append({"path": name, "sha256": digest.hexdigest(), "size": size})

    def close(self, meta: dict[str, Any]) -> None:
        manifest = {"format": FORMAT, **meta, "files": self.files}
        self._zip.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2))
        self._zip.close()


def _file_digest(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as fh:
        while chunk := fh.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


def _check_audit(lines: list[str]) -> list[str]:
    problems: list[str] = []
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            problems.append(f"{AUDIT} line {number}: not JSON")
    by_id = {e.get("id"): e for e in entries}
    previous: dict[str, Any] | None = None
    for entry in entries:
        label = f"audit entry {entry.get('id')}"
        if entry_hash(entry) != entry.get("hash"):
            problems.append(f"{label}: content does not match its hash")
        # The entry before it in the chain, when exported too, must be the one it names.
        before = by_id.get(entry.get("chain_prev_id"))
        if previous is not None and isinstance(entry.get("id"), int) and (
                entry["id"] == previous.get("id", 0) + 1):
            before = previous
        if before is not None and entry.get("prev_hash") != before.get("hash"):
            problems.append(f"{label}: does not link to entry {before.get('id')} before it")
        previous = entry
    return problems


def verify_archive(path: str | Path) -> list[str]:
    """Every problem found in the archive at ``path``; an empty list means it is intact."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return [f"cannot open the archive: {exc}"]
    problems: list[str] = []
    with archive:
        names = set(archive.namelist())
        if MANIFEST not in names:
            return [f"{MANIFEST} is missing"]
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except json.JSONDecodeError:
            return [f"{MANIFEST} is not JSON"]
        if manifest.get("format") != FORMAT:
            problems.append(f"unknown format {manifest.get('format')!r}")
        listed = set()
        for item in manifest.get("files", []):
            name = item.get("path")
            listed.add(name)
            if name not in names:
                problems.append(f"{name}: listed in the manifest but missing")
            elif _file_digest(archive, name) != item.get("sha256"):
                problems.append(f"{name}: SHA-256 does not match the manifest")
        for name in sorted(names - listed - {MANIFEST}):
            problems.append(f"{name}: not listed in the manifest")
        if AUDIT in names:
            problems += _check_audit(archive.read(AUDIT).decode("utf-8").splitlines())
        else:
            problems.append(f"{AUDIT} is missing")
    return problems


if __name__ == "__main__":
    found = verify_archive(sys.argv[1])
    print("\n".join(found) or "OK")
    sys.exit(1 if found else 0)
