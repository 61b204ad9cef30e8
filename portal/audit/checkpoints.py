"""Signed checkpoints of the audit chain: its length and head hash at one moment, signed with
the Ed25519 key kept outside the database, stored in the database and appended to a file
under instance/ (copy that file elsewhere: it is what proves a truncated chain short).

A checkpoint is not itself an audit entry (recording one would move the head it signs).
Written by the ``rq cron`` schedule and by ``flask --app portal audit checkpoint``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from flask import current_app
from sqlalchemy import func, select

from portal.audit.chain import canonical_json, lock_chain, public_key, public_key_hex, signing_key
from portal.audit.models import GENESIS_HASH, AuditCheckpoint, AuditEntry
from portal.extensions import db
from portal.models import utcnow

FORMAT = "aftercare-audit-checkpoint/1"


class ChainDoesNotExtend(RuntimeError):
    """The chain no longer holds the head of the last checkpoint: nothing is signed."""


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement: ``entries`` entries, the last being ``head_id`` with
    ``head_hash``; entries are keyed (carry an HMAC) from ``keyed_from`` on."""

    entries: int
    head_id: int | None
    head_hash: str
    keyed_from: int | None
    created_at: str
    signature: str

    @classmethod
    def from_payload(cls, payload: dict[str, Any], signature: str) -> Checkpoint:
        return cls(int(payload["entries"]), payload["head_id"], str(payload["head_hash"]),
                   payload.get("keyed_from"), str(payload["created_at"]), signature)

    def payload(self) -> dict[str, Any]:
        return {"format": FORMAT, "entries": self.entries, "head_id": self.head_id,
                "head_hash": self.head_hash, "keyed_from": self.keyed_from,
                "created_at": self.created_at}

    def line(self) -> str:
        """The checkpoint as one line of the checkpoint file (and of the audit page)."""
        return canonical_json({"checkpoint": self.payload(), "signature": self.signature,
                               "public_key": public_key_hex()})


def checkpoint_file() -> Path:
    return Path(current_app.config["AUDIT_CHECKPOINT_FILE"])


def _head() -> tuple[int, int | None, str]:
    count, head_id = db.session.execute(
        select(func.count(AuditEntry.id), func.max(AuditEntry.id))).one()
    if head_id is None:
        return 0, None, GENESIS_HASH
    return count, head_id, db.session.scalar(select(AuditEntry.hash)
                                             .where(AuditEntry.id == head_id))


def _extends(latest: AuditCheckpoint) -> bool:
    """Cheaply: the entry the last checkpoint ended on is still there, at the same place."""
    if latest.head_id is None:
        return True
    at = db.session.scalar(select(func.count(AuditEntry.id))
                           .where(AuditEntry.id <= latest.head_id))
    head = db.session.scalar(select(AuditEntry.hash).where(AuditEntry.id == latest.head_id))
    return at == latest.entry_count and head == latest.head_hash


def write_checkpoint() -> Checkpoint | None:
    """Sign the chain's current length and head (None when nothing was added since the last
    checkpoint); the caller commits. Refuses to sign a chain that lost the last head."""
    lock_chain()
    count, head_id, head_hash = _head()
    latest = db.session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())
                               .limit(1))
    if latest is not None:
        if latest.entry_count == count and latest.head_hash == head_hash:
            return None
        if not _extends(latest):
            raise ChainDoesNotExtend(
                f"the chain no longer ends in entry {latest.head_id} at position "
                f"{latest.entry_count} as checkpointed; run `audit verify`")
    keyed_from = db.session.scalar(select(func.min(AuditEntry.id))
                                   .where(AuditEntry.mac.is_not(None)))
    now = utcnow()
    unsigned = Checkpoint(count, head_id, head_hash, keyed_from,
                          now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "")
    text = canonical_json(unsigned.payload())
    checkpoint = Checkpoint.from_payload(unsigned.payload(),
                                         signing_key().sign(text.encode()).hex())
    db.session.add(AuditCheckpoint(created_at=now, entry_count=count, head_id=head_id,
                                   head_hash=head_hash, payload=text,
                                   signature=checkpoint.signature))
    db.session.flush()
    path = checkpoint_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:  # appended to, never rewritten
        fh.write(checkpoint.line() + "\n")
    return checkpoint


def _signed(text: str, signature: str) -> Checkpoint | None:
    """The checkpoint in ``text`` when ``signature`` is ours over exactly that text."""
    try:
        public_key().verify(bytes.fromhex(signature), text.encode())
        payload = json.loads(text)
        if payload.get("format") != FORMAT:
            return None
        return Checkpoint.from_payload(payload, signature)
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return None


def load_checkpoints() -> tuple[list[Checkpoint], dict[str, Any] | None]:
    """Every checkpoint in the database and in the file, signatures checked, oldest first;
    with a finding when one of them does not carry a valid signature."""
    found: dict[str, Checkpoint] = {}
    problem: dict[str, Any] | None = None
    for row in db.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)):
        checkpoint = _signed(row.payload, row.signature)
        if checkpoint is None:
            problem = problem or {"code": "bad_checkpoint", "where": "database",
                                  "ref": row.id}
        else:
            found[checkpoint.signature] = checkpoint
    path = checkpoint_file()
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            checkpoint = _signed(canonical_json(record["checkpoint"]), record["signature"])
        except (ValueError, KeyError, TypeError):
            checkpoint = None
        if checkpoint is None:
            problem = problem or {"code": "bad_checkpoint", "where": "file", "ref": number}
        else:
            found.setdefault(checkpoint.signature, checkpoint)
    ordered = sorted(found.values(), key=lambda c: (c.entries, c.created_at))
    return ordered, problem


def recent(limit: int = 5) -> list[Checkpoint]:
    """The newest checkpoints in the database, for the audit page (newest first)."""
    rows = db.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())
                              .limit(limit))
    return [c for c in (_signed(r.payload, r.signature) for r in rows) if c is not None]
