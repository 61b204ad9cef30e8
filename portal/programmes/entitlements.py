"""Entitlements of an event: the streamed, strict, all-or-nothing CSV import, and the list
(one row's check: ``portal.programmes.entitlement_rows``).

A file has the columns ``external_ref, order_ref, basis_amount, currency, basis_date``; any
other column is kept as a free attribute of each row (eligibility rules read them), except the
payout columns ``account_holder, bank, account`` (or ``iban``) and ``bic``, which are sealed
with the customer's own payout sealing (``portal.customers.payout.seal``) and never stored in
clear. The machinery is the customer import's (``portal.imports``): the file is read twice as
a stream (check, then import), every row error keeps its line, and the import applies every
row or none. A known (customer, order_ref) updates its entitlement. An applied import sends
``signals.entitlements_changed`` (its programmes' sign-offs no longer hold).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from portal import config, imports, jobs, uow
from portal.accounts import User
from portal.audit import services as audit
from portal.customers import payout
from portal.customers.models import Customer, ImportStatus
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, Message
from portal.imports import Row, as_message, detect_encoding, read_records
from portal.models import utcnow
from portal.programmes import signals
from portal.programmes.entitlement_rows import COLUMNS, row_cleaner
from portal.programmes.models import Entitlement, EntitlementImport

FIRST_ERRORS = 20
BATCH = 1000
PROGRESS_EVERY = 5000
SUBJECT = "entitlement_import"


# --- the file --------------------------------------------------------------------------------


def imports_dir() -> Path:
    return config.instance_folder("imports", "IMPORT_DIR")


def upload_path(batch: EntitlementImport) -> Path:
    return imports_dir() / f"entitlements-{batch.id}.csv"


def rejected_path(batch: EntitlementImport) -> Path:
    return imports_dir() / f"entitlements-{batch.id}-rejected.jsonl"


def start_import(event: Event, stream: BinaryIO, filename: str, *,
                 actor: User) -> EntitlementImport:
    """Keep the upload on disk (streamed, size-limited) and create its row."""
    filename = imports.clean_filename(filename)
    batch = EntitlementImport(event_id=event.id, uploaded_by_id=actor.id, filename=filename,
                              sha256="", size=0, status=ImportStatus.UPLOADED, first_errors=[])
    db.session.add(batch)
    db.session.flush()
    batch.sha256, batch.size = imports.save_upload(stream, upload_path(batch))
    audit.record("entitlement_import.upload", SUBJECT, batch.id,
                 N_("Entitlements CSV %(file)s uploaded for event %(event)d (bytes: %(size)d)",
                    file=filename, event=event.id, size=batch.size),
                 after={"sha256": batch.sha256, "size": batch.size}, actor=actor)
    return batch


def read_header(path: Path, encoding: str) -> list[str]:
    return imports.check_header(read_records(path, encoding), COLUMNS, COLUMNS).cells


def event_customers(event_id: int) -> dict[str, int]:
    """The event's customers by external_ref (one pass of the import holds them)."""
    rows = db.session.execute(select(Customer.external_ref, Customer.id).where(
        Customer.event_id == event_id, Customer.erased_at.is_(None)))
    return {ref: customer_id for ref, customer_id in rows}


def read_rows(path: Path, encoding: str, customers: Mapping[str, int]) -> Iterator[Row]:
    """Stream the rows of an entitlements CSV, each checked; blank lines are skipped."""
    return imports.read_rows(path, encoding, required=COLUMNS, expected=COLUMNS,
                             clean=row_cleaner(customers))


def _set_progress(batch_id: int, **values: Any) -> None:
    db.session.execute(update(EntitlementImport).where(EntitlementImport.id == batch_id)
                       .values(**values))


def _fail(batch_id: int, reason: Message) -> None:
    _set_progress(batch_id, status=ImportStatus.FAILED, message=json.dumps(reason.to_json()),
                  finished_at=utcnow())


# The kind of this import's keys in ``imports.StagedKey`` (the duplicate check of a file).
STAGED = "entitlement_import"


def _key(row: Row) -> str | None:
    """A row's customer and order (a checked row's): the same twice in a file is an error."""
    if row.values is None:
        return None
    return imports.KEY_SEPARATOR.join((row.raw.get("external_ref", "").strip(),
                                       row.values["order_ref"]))


def _rows_checked(path: Path, encoding: str, customers: Mapping[str, int],
                  batch_id: int) -> Iterator[tuple[Row, Message | None]]:
    """Each row with its error: its own, or a second row for the same customer and order
    within the file (found through ``imports.first_lines``, not a set in memory)."""
    for row, first in imports.first_lines(read_rows(path, encoding, customers), STAGED,
                                          batch_id, _key):
        if row.error is None and first is not None:
            key = _key(row).split(imports.KEY_SEPARATOR)
            yield row, N_("external_ref and order_ref %(value)s already appear on line "
                          "%(line)d", value=", ".join(key), line=first)
        else:
            yield row, row.error


def validate_import(batch_id: int, checkpoint: Callable[[], None] | None = None) -> None:
    """Check every row; keep counts, the first errors and every rejected row. ``checkpoint``
    is called after each progress count (the job commits it, for the page)."""
    batch = db.session.get(EntitlementImport, batch_id)
    if batch is None or not batch.validating:
        return  # done already (the job may run twice)
    path = upload_path(batch)
    batch.status = ImportStatus.VALIDATING
    imports.drop_staged_keys(STAGED, batch_id)  # of a check killed half-way, if any
    total = valid = 0
    try:
        encoding = detect_encoding(path)
        _set_progress(batch_id, encoding=encoding)
        customers = event_customers(batch.event_id)
        with imports.RejectedRows(rejected_path(batch), read_header(path, encoding),
                                  FIRST_ERRORS) as rejected:
            for row, error in _rows_checked(path, encoding, customers, batch_id):
                total += 1
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
    _set_progress(batch_id, status=ImportStatus.VALIDATED, processed_rows=total,
                  total_rows=total, valid_rows=valid, error_rows=rejected.count,
                  first_errors=rejected.first)


def rejected_csv(batch: EntitlementImport) -> Iterator[str]:
    return imports.rejected_csv(rejected_path(batch))


def confirm_import(batch: EntitlementImport, *, actor: User) -> None:
    """Staff confirm a checked file: only one without any rejected row (all or nothing)."""
    if batch.status != ImportStatus.VALIDATED:
        raise RuleViolation(_("This file is not ready to import."))
    if batch.error_rows:
        raise RuleViolation(_("The file has rejected rows: correct them and upload the whole "
                              "file again. Nothing is imported from a file with errors."))
    if batch.valid_rows == 0:
        raise RuleViolation(_("There are no valid rows to import."))
    claimed = db.session.execute(
        update(EntitlementImport).where(EntitlementImport.id == batch.id,
                                        EntitlementImport.status == ImportStatus.VALIDATED)
        .values(status=ImportStatus.IMPORTING)).rowcount
    if not claimed:
        raise RuleViolation(_("This file is not ready to import."))
    db.session.refresh(batch)
    audit.record("entitlement_import.confirm", SUBJECT, batch.id,
                 N_("Entitlements import confirmed (rows: %(rows)d)", rows=batch.valid_rows),
                 actor=actor)


def discard_import(batch: EntitlementImport, *, actor: User) -> None:
    """Nothing of the file is imported; only a checked or failed file, once (a conditional
    update: a confirmation at the same moment wins or loses whole)."""
    discarded = db.session.execute(
        update(EntitlementImport).where(
            EntitlementImport.id == batch.id,
            EntitlementImport.status.in_((ImportStatus.VALIDATED, ImportStatus.FAILED)))
        .values(status=ImportStatus.DISCARDED, finished_at=utcnow())).rowcount
    if not discarded:
        raise RuleViolation(_("This file can no longer be discarded."))
    db.session.refresh(batch)
    audit.record("entitlement_import.discard", SUBJECT, batch.id,
                 N_("Entitlements import discarded; nothing was imported"), actor=actor)
    imports.drop_staged_keys(STAGED, batch.id)
    upload_path(batch).unlink(missing_ok=True)


def _upsert_statement() -> Any:
    return imports.upsert_statement(
        Entitlement.__table__, ("event_id", "customer_id", "order_ref"),
        ("basis_amount", "currency", "basis_date", "attributes", "payout_sealed",
         "last_import_id", "updated_at"))


def run_import(batch_id: int) -> None:
    """Apply every row in one transaction, or none: a file with any rejected row (or one that
    changed on disk since its check) is refused whole."""
    batch = db.session.get(EntitlementImport, batch_id)
    if batch is None or batch.status != ImportStatus.IMPORTING:
        return
    event_id, encoding = batch.event_id, batch.encoding or "utf-8"
    path = upload_path(batch)
    pending: list[dict[str, Any]] = []
    imports.drop_staged_keys(STAGED, batch_id)
    now = utcnow()
    upsert = _upsert_statement()
    count = select(func.count(Entitlement.id)).where(Entitlement.event_id == event_id)
    before = db.session.scalar(count) or 0
    customers = event_customers(event_id)

    def flush() -> None:
        db.session.execute(upsert, pending)
        pending.clear()

    failed = json.dumps(N_("The import failed and nothing was imported; the error is logged "
                           "for the administrators. Try again, or ask an admin.").to_json())
    with jobs.failure_recorded(EntitlementImport, batch_id, error_column="message",
                               reason=lambda _error: failed):
        applied = 0
        # The keys are staged in this transaction: a failure rolls them back with the rest.
        for row, error in _rows_checked(path, encoding, customers, batch_id):
            if error is not None:
                uow.rollback()  # the rows flushed so far, and the staged keys
                _fail(batch_id, N_("Line %(line)d is no longer valid (the event's customers "
                                   "changed since the check); nothing was imported. Upload "
                                   "the file again.", line=row.number))
                return
            values = dict(row.values)
            account = values.pop("account")
            pending.append({**values, "event_id": event_id, "created_at": now,
                            "updated_at": now, "last_import_id": batch_id,
                            "payout_sealed": payout.seal(values["customer_id"], account)
                            if account else None})
            applied += 1
            if len(pending) >= BATCH:
                flush()
        if pending:
            flush()
        imports.drop_staged_keys(STAGED, batch_id)
        created = (db.session.scalar(count) or 0) - before
        updated = applied - created
        batch = db.session.get(EntitlementImport, batch_id)
        batch.status, batch.finished_at = ImportStatus.IMPORTED, utcnow()
        batch.created_count, batch.updated_count = created, updated
        audit.record("entitlement_import.done", SUBJECT, batch.id,
                     N_("Entitlements import of %(file)s applied: added: %(created)d, "
                        "updated: %(updated)d (sha256 %(digest)s…)", file=batch.filename,
                        created=created, updated=updated, digest=batch.sha256[:12]),
                     after={"created": created, "updated": updated, "sha256": batch.sha256})
        signals.entitlements_changed.send(event_id)


# --- the list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Total:
    currency: str
    count: int
    amount: Decimal


def totals(event_id: int) -> list[Total]:
    """The event's entitlements per currency: how many, and their basis amounts' sum."""
    rows = db.session.execute(
        select(Entitlement.currency, func.count(Entitlement.id),
               func.sum(Entitlement.basis_amount))
        .where(Entitlement.event_id == event_id)
        .group_by(Entitlement.currency).order_by(Entitlement.currency))
    return [Total(currency, count, amount or Decimal(0)) for currency, count, amount in rows]


def listing(event_id: int) -> Any:
    """The statement of the event's entitlements, in customer and order order."""
    return (select(Entitlement).join(Customer, Customer.id == Entitlement.customer_id)
            .where(Entitlement.event_id == event_id)
            .order_by(Customer.external_ref, Entitlement.order_ref, Entitlement.id))


def erase_bank_details(customer_ids: Iterable[int]) -> int:
    """Forget the sealed bank details of erased customers' entitlements (the erasure's
    transaction); the amounts stay, as cases and payments do."""
    ids = list(customer_ids)
    if not ids:
        return 0
    return db.session.execute(update(Entitlement).where(
        Entitlement.customer_id.in_(ids), Entitlement.payout_sealed.is_not(None))
        .values(payout_sealed=None)).rowcount or 0


def event_files(event_id: int) -> list[Path]:
    """The event's uploaded entitlement files and their rejected rows (they hold the rows as
    typed, bank details included), and their error previews cleared: for the erasure."""
    files: list[Path] = []
    for batch in db.session.scalars(select(EntitlementImport).where(
            EntitlementImport.event_id == event_id)):
        files += [upload_path(batch), rejected_path(batch)]
        if batch.first_errors:
            batch.first_errors = []
    return files
