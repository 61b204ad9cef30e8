"""Evidence on a case: added by the customer on their page or by staff on the case page, at
most ``MAX_PER_CASE`` files, each checked by its content (``evidence_files``), recorded in the
audit trail by its SHA-256 and size (never its name: "王芳-银行流水.pdf" is personal data), and
deleted with the customer's personal data when they are erased.

A file is written only once every check has passed, before its row is committed (a committed
row always finds its file). If the unit of work rolls back, the file it created is removed
again unless a committed row holds the same content (``uow.after_rollback``).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Protocol

from flask_babel import gettext as _
from sqlalchemy import delete, func, select

from portal import uow
from portal.accounts import User
from portal.audit import services as audit
from portal.cases import evidence_files
from portal.cases.models import Case, Evidence, Uploader
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term

MAX_PER_CASE = 10
FIELD = "file"


class Upload(Protocol):
    """What a form's file is (werkzeug's ``FileStorage``): a name and a stream."""

    filename: str | None
    stream: IO[bytes]


def add_from_customer(case: Case, customer: Customer, upload: Upload) -> Evidence:
    """The customer adds a file to one of their own cases (their page's view calls this)."""
    if case.customer_id != customer.id:
        raise RuleViolation(_("This case is not yours."), field=FIELD)
    return _add(case, upload, Uploader.CUSTOMER, customer.id, actor=None)


def add_from_staff(case: Case, upload: Upload, *, actor: User) -> Evidence:
    """An agent or admin attaches a file the customer sent another way."""
    return _add(case, upload, Uploader.STAFF, actor.id, actor=actor)


def for_case(case: Case) -> list[Evidence]:
    return list(db.session.scalars(select(Evidence).where(Evidence.case_id == case.id)
                                   .order_by(Evidence.id)))


def room_left(case: Case) -> int:
    """How many more files the case takes."""
    return max(0, MAX_PER_CASE - _count(case.id))


def may_add(_user: User, case: Case) -> bool:
    """The object rule of the upload views: the case still takes a file."""
    return room_left(case) > 0


def _count(case_id: int) -> int:
    return db.session.scalar(select(func.count(Evidence.id)).where(Evidence.case_id == case_id))


def _read(upload: Upload) -> bytes:
    """At most one byte more than allowed: enough to know the file is too large."""
    data = upload.stream.read(evidence_files.MAX_BYTES + 1)
    if len(data) > evidence_files.MAX_BYTES:
        raise RuleViolation(evidence_files.too_large(), field=FIELD)
    return data


def _add(case: Case, upload: Upload | None, kind: Uploader, uploader_id: int,
         *, actor: User | None) -> Evidence:
    if upload is None or not upload.filename:
        raise RuleViolation(_("Choose a file to upload."), field=FIELD)
    # Two uploads at once must not both take the tenth place: hold the case's row (PostgreSQL;
    # SQLite writes one at a time anyway).
    db.session.execute(select(Case.id).where(Case.id == case.id).with_for_update())
    if _count(case.id) >= MAX_PER_CASE:
        raise RuleViolation(_("A case holds at most %(n)d files; this one has them all.",
                              n=MAX_PER_CASE), field=FIELD)
    try:
        kept = evidence_files.clean(_read(upload))
    except evidence_files.Unacceptable as err:
        raise RuleViolation(err.message, field=FIELD) from None
    if db.session.scalar(select(Evidence.id).where(Evidence.case_id == case.id,
                                                   Evidence.sha256 == kept.sha256)):
        raise RuleViolation(_("This file is already on the case."), field=FIELD)
    thumbnail = _keep(kept.thumbnail) if kept.thumbnail else None
    digest = _keep(kept.data)
    row = Evidence(case_id=case.id, uploader_kind=kind, uploader_id=uploader_id,
                   original_name=evidence_files.safe_name(upload.filename, kept.content_type),
                   content_type=kept.content_type, size=len(kept.data), sha256=digest,
                   thumbnail_sha256=thumbnail)
    db.session.add(row)
    db.session.flush()
    audit.record("case.evidence", "case", case.id, N_(
        "Case %(ref)s: evidence added by %(uploader)s (%(type)s, %(size)d bytes, SHA-256 "
        "%(sha256)s)", ref=case.ref, uploader=term("evidence_uploader", kind),
        type=term("evidence_type", kept.content_type), size=row.size, sha256=digest),
        after={"evidence_id": row.id, "uploader": kind, "uploader_id": uploader_id,
               "content_type": kept.content_type, "size": row.size, "sha256": digest},
        actor=actor)
    return row


def _keep(data: bytes) -> str:
    """Store the bytes; a file this unit of work created goes again if it rolls back."""
    digest, created = evidence_files.store(data)
    if created:
        uow.after_rollback(lambda: _remove_unless_kept([digest]))
    return digest


def _remove_unless_kept(digests: list[str]) -> None:
    """Delete the files no committed row names (read on a connection of its own: this runs
    just after a rollback, or after the commit that deleted the rows)."""
    evidence = Evidence.__table__
    with db.engine.connect() as conn:
        kept = set(conn.scalars(select(evidence.c.sha256).where(
            evidence.c.sha256.in_(digests)))) | set(conn.scalars(
            select(evidence.c.thumbnail_sha256).where(evidence.c.thumbnail_sha256.in_(digests))))
    for digest in set(digests) - kept:
        evidence_files.stored_path(digest).unlink(missing_ok=True)


def delete_for_customers(customer_ids: list[int]) -> int:
    """Erasure: delete the evidence of these customers' cases, rows now and files once the
    transaction is committed (a file another case still holds stays). Returns the count."""
    case_ids = select(Case.id).where(Case.customer_id.in_(customer_ids))
    rows = db.session.execute(select(Evidence.sha256, Evidence.thumbnail_sha256).where(
        Evidence.case_id.in_(case_ids))).all()
    if not rows:
        return 0
    db.session.execute(delete(Evidence).where(Evidence.case_id.in_(case_ids)),
                       execution_options={"synchronize_session": False})
    digests = sorted({h for row in rows for h in row if h})
    uow.after_commit(lambda: _remove_unless_kept(digests))
    return len(rows)


def file_path(row: Evidence, *, thumbnail: bool = False) -> Path | None:
    """The stored file of the row (or its thumbnail), if it is there."""
    digest = row.thumbnail_sha256 if thumbnail else row.sha256
    if not digest:
        return None
    path = evidence_files.stored_path(digest)
    return path if path.exists() else None
