"""The audit chain's primitives: the canonical form of an entry, its hash, its keyed HMAC, the
checkpoint signing key and the lock that serialises writers.

The keys live outside the database (environment or files under instance/, see
``portal.config``): someone who can rewrite every row can recompute plain SHA-256 hashes, but
not the HMAC of an entry nor the signature of a checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import current_app
from sqlalchemy import text

from portal.extensions import db

if TYPE_CHECKING:
    from portal.audit.models import AuditEntry

CHAIN_LOCK_KEY = 7_411_002  # arbitrary, constant advisory-lock key for the audit chain
MAC_CONTEXT = b"aftercare-audit-entry/1\n"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def compute_hash(entry: AuditEntry) -> str:
    """The entry's chain hash: SHA-256 of its fields and the previous entry's hash."""
    payload = {
        "created_at": entry.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor_id": entry.actor_id,
        "actor_label": entry.actor_label,
        "action": entry.action,
        "subject_type": entry.subject_type,
        "subject_id": entry.subject_id,
        "summary": entry.summary,
        "before": entry.before,
        "after": entry.after,
        "ip": entry.ip,
        "prev_hash": entry.prev_hash,
    }
    if entry.message_key is not None:
        # Only entries written with a message key hash it, so every older one keeps its hash.
        payload["message_key"] = entry.message_key
        payload["message_params"] = entry.message_params
    if entry.concerns is not None:
        payload["concerns"] = entry.concerns
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def entry_mac(entry_hash: str) -> str:
    """HMAC-SHA256 of an entry's hash (which covers its content and the chain before it)."""
    key = current_app.config["AUDIT_HMAC_KEY"].encode()
    return hmac.new(key, MAC_CONTEXT + entry_hash.encode(), hashlib.sha256).hexdigest()


def mac_matches(entry_hash: str, mac: str) -> bool:
    return hmac.compare_digest(entry_mac(entry_hash), mac)


def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(current_app.config["AUDIT_SIGNING_KEY"]))


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def public_key_hex() -> str:
    """The checkpoints' public key (raw 32 bytes in hex): give it to whoever checks copies."""
    return public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def lock_chain() -> None:
    """Serialise writers of the chain until the transaction ends, so that reading the head
    and appending after it cannot interleave with another writer. PostgreSQL: an advisory
    lock. SQLite has one writer at a time: make sure this connection is it (a connection
    with nothing written yet reads outside a transaction, and would append after a head
    that another writer may move before this one writes)."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    elif not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
