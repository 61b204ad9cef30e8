"""Customer rules: validation, hand edits, and the streamed CSV import.

The import reads the file twice as a stream (validate, then import), never whole, so 100,000
rows keep memory flat. It imports every valid row in one transaction or nothing, and a known
``external_ref`` updates its customer instead of adding a second one. Reasons are kept as
message keys (``portal.i18n.Message``) and read in the reader's language: the preview's
first errors, the failure and the rejected rows (a JSON-lines file with every original cell,
handed out as CSV by ``rejected_csv``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from portal import config, imports, jobs
from portal.accounts import User
from portal.audit import services as audit
from portal.customers.models import Customer, ImportBatch, ImportStatus
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, Message
from portal.imports import Row, as_message, control_character, detect_encoding, read_records
from portal.models import utcnow

COLUMNS = ("external_ref", "name", "company", "email", "phone", "locale", "tags")
REQUIRED_COLUMNS = ("external_ref", "name")
FIRST_ERRORS = 20
BATCH = 1000
PROGRESS_EVERY = 5000

EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()\-]{4,24}$")
LOCALE_ALIASES = {
    "": "zh_CN", "zh": "zh_CN", "zh_cn": "zh_CN", "zh-cn": "zh_CN", "zh-hans": "zh_CN",
    "zh_hans_cn": "zh_CN", "cn": "zh_CN", "中文": "zh_CN", "简体中文": "zh_CN",
    "en": "en", "en_us": "en", "en-us": "en", "en_gb": "en", "en-gb": "en", "english": "en",
}
MAX_UPLOAD_BYTES = config.MAX_UPLOAD_BYTES
LIMITS = {"external_ref": 64, "name": 200, "company": 200, "email": 254, "phone": 40}


def clean_customer(raw: dict[str, str]) -> dict[str, Any]:
    """A valid customer's fields, or RuleViolation naming the first bad field."""
    values = {key: (raw.get(key) or "").strip() for key in COLUMNS}
    for key, value in values.items():
        if code := control_character(value):
            raise RuleViolation(N_("%(field)s contains a control character (%(code)s), such "
                                   "as a line break or a NUL byte; remove it.",
                                   field=key, code=code), field=key)
    for key in REQUIRED_COLUMNS:
        if not values[key]:
            raise RuleViolation(N_("%(field)s is required.", field=key), field=key)
    for key, limit in LIMITS.items():
        if len(values[key]) > limit:
            raise RuleViolation(N_("%(field)s is too long (at most %(n)d characters).",
                                   field=key, n=limit), field=key)
    email = values["email"].lower()
    if email and not EMAIL_RE.match(email):
        raise RuleViolation(N_("%(value)s is not an e-mail address.", value=values["email"]),
                            field="email")
    phone = values["phone"]
    if phone and not PHONE_RE.match(phone):
        raise RuleViolation(N_("%(value)s does not look like a phone number.", value=phone),
                            field="phone")
    locale = LOCALE_ALIASES.get(values["locale"].lower().replace(" ", ""))
    if locale is None:
        raise RuleViolation(N_("Unknown language %(value)s (use zh_CN or en).",
                               value=values["locale"]), field="locale")
    tags = sorted({t.strip() for t in re.split(r"[;|,，；]", values["tags"]) if t.strip()})
    return {"external_ref": values["external_ref"], "name": values["name"],
            "company": values["company"], "email": email, "phone": phone, "locale": locale,
            "tags": tags}


# --- hand edits ----------------------------------------------------------------------------


def _existing(event_id: int, external_ref: str) -> Customer | None:
    return db.session.scalar(select(Customer).where(Customer.event_id == event_id,
                                                    Customer.external_ref == external_ref))


def create_customer(event: Event, raw: dict[str, str], *, actor: User) -> Customer:
    values = clean_customer(raw)
    if _existing(event.id, values["external_ref"]):
        raise RuleViolation(_("A customer with this reference already exists in this event."),
                            field="external_ref")
    customer = Customer(event_id=event.id, **values)
    db.session.add(customer)
    db.session.flush()
    audit.record("customer.create", "customer", customer.id,
                 N_("Customer #%(id)d added by hand", id=customer.id),
                 after=customer.audit_state(), actor=actor)
    return customer


def update_customer(customer: Customer, raw: dict[str, str], *, actor: User) -> bool:
    if customer.erased:
        raise RuleViolation(_("This customer's personal data was erased; it cannot be edited."))
    values = clean_customer(raw)
    other = _existing(customer.event_id, values["external_ref"])
    if other is not None and other.id != customer.id:
        raise RuleViolation(_("A customer with this reference already exists in this event."),
                            field="external_ref")
    before = customer.audit_state()
    for key, value in values.items():
        setattr(customer, key, value)
    if customer.audit_state() == before:
        return False
    customer.updated_at = utcnow()
    audit.record("customer.update", "customer", customer.id,
                 N_("Customer #%(id)d edited", id=customer.id), before=before,
                 after=customer.audit_state(), actor=actor)
    return True


# --- CSV import ------------------------------------------------------------------------------


def imports_dir() -> Path:
    return config.instance_folder("imports", "IMPORT_DIR")


def upload_path(batch: ImportBatch) -> Path:
    return imports_dir() / f"{batch.id}.csv"


def rejected_path(batch: ImportBatch) -> Path:
    return imports_dir() / f"{batch.id}-rejected.jsonl"


def start_import(event: Event, stream: BinaryIO, filename: str, *, actor: User) -> ImportBatch:
    """Keep the upload on disk (streamed, size-limited) and create its row."""
    filename = imports.clean_filename(filename)
    batch = ImportBatch(event_id=event.id, uploaded_by_id=actor.id, filename=filename,
                        sha256="", size=0, status=ImportStatus.UPLOADED, first_errors=[])
    db.session.add(batch)
    db.session.flush()
    batch.sha256, batch.size = imports.save_upload(stream, upload_path(batch),
                                                   limit=MAX_UPLOAD_BYTES)
    audit.record("customer_import.upload", "customer_import", batch.id,
                 N_("CSV %(file)s uploaded for event %(event)d (bytes: %(size)d)",
                    file=filename, event=event.id, size=batch.size),
                 after={"sha256": batch.sha256, "size": batch.size}, actor=actor)
    return batch


def read_header(path: Path, encoding: str) -> list[str]:
    return imports.check_header(read_records(path, encoding), REQUIRED_COLUMNS, COLUMNS).cells


def read_rows(path: Path, encoding: str) -> Iterator[Row]:
    """Stream the records of a customer CSV, each validated; blank lines are skipped."""
    return imports.read_rows(path, encoding, required=REQUIRED_COLUMNS, expected=COLUMNS,
                             clean=clean_customer)


def _set_progress(batch_id: int, **values: Any) -> None:
    db.session.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(**values))


def _fail(batch_id: int, reason: Message) -> None:
    _set_progress(batch_id, status=ImportStatus.FAILED, message=json.dumps(reason.to_json()),
                  finished_at=utcnow())


# The kind of this import's keys in ``imports.StagedKey`` (the duplicate check of a file).
STAGED = "customer_import"


def _key(row: Row) -> str | None:
    return None if row.values is None else row.values["external_ref"]


def validate_import(batch_id: int, checkpoint: Callable[[], None] | None = None) -> None:
    """Check every row; keep counts, the first errors and every rejected row. ``checkpoint``
    is called after each progress count (the job commits it, for the page)."""
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or not batch.validating:
        return  # done already (the job may run twice)
    path = upload_path(batch)
    batch.status = ImportStatus.VALIDATING
    imports.drop_staged_keys(STAGED, batch_id)  # of a check killed half-way, if any
    total = valid = 0
    try:
        encoding = detect_encoding(path)
        _set_progress(batch_id, encoding=encoding)
        with imports.RejectedRows(rejected_path(batch), read_header(path, encoding),
                                  FIRST_ERRORS) as rejected:
            for row, first in imports.first_lines(read_rows(path, encoding), STAGED, batch_id,
                                                  _key):
                total += 1
                error = row.error
                if error is None and first is not None:
                    error = N_("external_ref %(ref)s already appears on line %(line)d",
                               ref=row.values["external_ref"], line=first)
                if error is None:
                    valid += 1
                else:
                    rejected.add(row, error)
                if total % PROGRESS_EVERY == 0:
                    _set_progress(batch_id, processed_rows=total)
                    if checkpoint:
                        checkpoint()
    except RuleViolation as err:
        imports.drop_staged_keys(STAGED, batch_id)
        _fail(batch_id, as_message(err.text))
        return
    imports.drop_staged_keys(STAGED, batch_id)
    _set_progress(batch_id, status=ImportStatus.VALIDATED, processed_rows=total, total_rows=total,
                  valid_rows=valid, error_rows=rejected.count, first_errors=rejected.first)


def rejected_csv(batch: ImportBatch) -> Iterator[str]:
    """The rejected rows as CSV, reasons in the reader's language: the line, the reason,
    then every cell of the row as it was in the file."""
    return imports.rejected_csv(rejected_path(batch))


def confirm_import(batch: ImportBatch, *, actor: User) -> None:
    if batch.status != ImportStatus.VALIDATED:
        raise RuleViolation(_("This file is not ready to import."))
    if batch.valid_rows == 0:
        raise RuleViolation(_("There are no valid rows to import."))
    batch.status = ImportStatus.IMPORTING
    audit.record("customer_import.confirm", "customer_import", batch.id,
                 N_("Import confirmed (valid rows: %(rows)d)", rows=batch.valid_rows),
                 actor=actor)


def discard_import(batch: ImportBatch, *, actor: User) -> None:
    if batch.status not in (ImportStatus.VALIDATED, ImportStatus.FAILED):
        raise RuleViolation(_("This file can no longer be discarded."))
    batch.status, batch.finished_at = ImportStatus.DISCARDED, utcnow()
    audit.record("customer_import.discard", "customer_import", batch.id,
                 N_("Import discarded; nothing was imported"), actor=actor)
    imports.drop_staged_keys(STAGED, batch.id)
    upload_path(batch).unlink(missing_ok=True)


def _upsert_statement() -> Any:
    """INSERT … ON CONFLICT (event_id, external_ref) DO UPDATE: one statement per batch, on
    both databases, so a known reference updates its customer and never adds a second one."""
    return imports.upsert_statement(
        Customer.__table__, ("event_id", "external_ref"),
        ("name", "company", "email", "phone", "locale", "tags", "updated_at", "last_import_id"))


def run_import(batch_id: int, progress: Callable[[int], None] | None = None) -> None:
    """Import every valid row in one transaction: all of them, or none if anything fails."""
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or batch.status != ImportStatus.IMPORTING:
        return
    event_id, encoding = batch.event_id, batch.encoding or "utf-8"
    path = upload_path(batch)
    imports.drop_staged_keys(STAGED, batch_id)
    imported = 0
    pending: list[dict[str, Any]] = []
    now = utcnow()
    upsert = _upsert_statement()
    count = select(func.count(Customer.id)).where(Customer.event_id == event_id)
    before = db.session.scalar(count) or 0

    def flush() -> None:
        db.session.execute(upsert, [{**p, "event_id": event_id, "created_at": now,
                                     "updated_at": now, "created_by_import_id": batch_id,
                                     "last_import_id": batch_id} for p in pending])
        pending.clear()

    failed = json.dumps(N_("The import failed and nothing was imported; the error is logged "
                           "for the administrators. Try again, or ask an admin.").to_json())
    with jobs.failure_recorded(ImportBatch, batch_id, error_column="message",
                               reason=lambda _error: failed):
        # The keys are staged in this transaction: a failure rolls them back with the rest.
        for row, first in imports.first_lines(read_rows(path, encoding), STAGED, batch_id,
                                              _key):
            if row.values is None or first is not None:
                continue
            imported += 1
            pending.append(row.values)
            if len(pending) >= BATCH:
                flush()
                if progress:
                    progress(imported)
        if pending:
            flush()
        imports.drop_staged_keys(STAGED, batch_id)
        created = (db.session.scalar(count) or 0) - before
        updated = imported - created
        batch = db.session.get(ImportBatch, batch_id)
        batch.status, batch.finished_at = ImportStatus.IMPORTED, utcnow()
        batch.created_count, batch.updated_count = created, updated
        audit.record("customer_import.done", "customer_import", batch.id,
                     N_("Import of %(file)s done: customers added: %(created)d, updated: "
                        "%(updated)d (sha256 %(digest)s…)", file=batch.filename,
                        created=created, updated=updated, digest=batch.sha256[:12]),

                     after={"created": created, "updated": updated, "sha256": batch.sha256})
