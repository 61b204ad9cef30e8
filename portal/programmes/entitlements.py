"""Entitlements of an event: the streamed, strict, all-or-nothing CSV import, and the list.

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
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from babel.numbers import get_currency_precision, is_currency
from flask_babel import gettext as _
from schwifty import BIC
from schwifty.exceptions import SchwiftyException
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
from portal.imports import Row, as_message, control_character, detect_encoding, read_records
from portal.models import utcnow
from portal.money import FULL_WIDTH, MAX_AMOUNT, MAX_LENGTH, PLAIN_DECIMAL, SCALE
from portal.programmes import signals
from portal.programmes.models import Entitlement, EntitlementImport

COLUMNS = ("external_ref", "order_ref", "basis_amount", "currency", "basis_date")
PAYOUT_COLUMNS = ("account_holder", "bank", "account", "iban", "bic")
FIRST_ERRORS = 20
BATCH = 1000
PROGRESS_EVERY = 5000
MAX_ATTRIBUTE_NAME, MAX_ATTRIBUTE_VALUE, MAX_ORDER_REF = 64, 200, 64
# ISO 4217 codes that name no money one can pay out.
NOT_PAYABLE = {"XXX", "XTS"}
DATE_SHAPE = re.compile(r"^([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})$")
SUBJECT = "entitlement_import"


# --- one row ---------------------------------------------------------------------------------


def parse_basis_amount(text: str, currency: str) -> Decimal:
    """A positive amount in plain decimal notation with no more decimals than the currency
    allows (and at most two, as amounts are stored); RuleViolation with the reason."""
    raw = text.strip().translate(FULL_WIDTH)
    if not raw or len(raw) > MAX_LENGTH or not PLAIN_DECIMAL.fullmatch(raw):
        raise RuleViolation(N_("basis_amount %(value)s is not a decimal amount such as "
                               "1280.50.", value=text.strip()), field="basis_amount")
    amount = Decimal(raw.replace(",", ""))
    if amount <= 0:
        raise RuleViolation(N_("basis_amount must be more than zero (%(value)s).", value=raw),
                            field="basis_amount")
    if amount > MAX_AMOUNT:
        raise RuleViolation(N_("basis_amount %(value)s is above the limit of %(max)s.",
                               value=raw, max=str(MAX_AMOUNT)), field="basis_amount")
    places = min(get_currency_precision(currency), SCALE)
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise RuleViolation(N_("basis_amount %(value)s has more decimals than %(currency)s "
                               "allows (%(places)d).", value=raw, currency=currency,
                               places=places), field="basis_amount")
    return amount.quantize(Decimal(1).scaleb(-SCALE))


def parse_currency(text: str) -> str:
    code = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code) or code in NOT_PAYABLE or not is_currency(code):
        raise RuleViolation(N_("Unknown currency %(value)s (use an ISO 4217 code such as "
                               "CNY).", value=text.strip()), field="currency")
    return code


def parse_basis_date(text: str) -> date:
    """YYYY-MM-DD (or YYYY/MM/DD, as spreadsheets save it)."""
    found = DATE_SHAPE.match(text.strip())
    try:
        if found is None:
            raise ValueError
        return date(*(int(part) for part in found.groups()))
    except ValueError:
        raise RuleViolation(N_("basis_date %(value)s is not a date (use YYYY-MM-DD).",
                               value=text.strip()), field="basis_date") from None


def parse_bank_account(values: Mapping[str, str]) -> payout.BankAccount | None:
    """The bank account of a row's payout columns, or None when they are all empty. The BIC,
    when given, is kept with the bank's name. Messages never repeat the account."""
    if not any(values.get(c) for c in PAYOUT_COLUMNS):
        return None
    holder = values.get("account_holder", "")
    if not holder or len(holder) > 120:
        raise RuleViolation(N_("account_holder is required with bank details (at most 120 "
                               "characters)."), field="account_holder")
    given = {values.get("account", ""), values.get("iban", "")} - {""}
    if len(given) != 1:
        raise RuleViolation(N_("Give the bank account once, in account or iban."),
                            field="account")
    try:
        account, is_iban = payout.parse_account(given.pop())
    except RuleViolation:
        raise RuleViolation(N_("The bank account is not valid: digits, or an IBAN with the "
                               "right country, check digits and length."),
                            field="account") from None
    bank, bic = values.get("bank", ""), values.get("bic", "").upper()
    if bic:
        try:
            bic = str(BIC(bic))
        except SchwiftyException:
            raise RuleViolation(N_("bic %(value)s is not a valid BIC.", value=bic),
                                field="bic") from None
    bank = " ".join(part for part in (bank, f"BIC {bic}" if bic else "") if part)
    if len(bank) > 120:
        raise RuleViolation(N_("bank is too long (at most %(n)d characters).", n=120),
                            field="bank")
    return payout.BankAccount(holder, bank, account, is_iban)


def row_cleaner(customers: Mapping[str, int]) -> Callable[[dict[str, str]], dict[str, Any]]:
    """The check of one row against the event's customers (external_ref → customer id)."""

    def clean(raw: dict[str, str]) -> dict[str, Any]:
        values = {key.strip(): (value or "").strip() for key, value in raw.items()
                  if key.strip()}
        for key, value in values.items():
            if code := control_character(value):
                raise RuleViolation(N_("%(field)s contains a control character (%(code)s), "
                                       "such as a line break or a NUL byte; remove it.",
                                       field=key, code=code), field=key)
        for key in COLUMNS:
            if not values.get(key):
                raise RuleViolation(N_("%(field)s is required.", field=key), field=key)
        ref = values["external_ref"]
        customer_id = customers.get(ref)
        if customer_id is None:
            raise RuleViolation(N_("No customer with external_ref %(value)s in this event; "
                                   "import the customer first.", value=ref),
                                field="external_ref")
        if len(values["order_ref"]) > MAX_ORDER_REF:
            raise RuleViolation(N_("%(field)s is too long (at most %(n)d characters).",
                                   field="order_ref", n=MAX_ORDER_REF), field="order_ref")
        currency = parse_currency(values["currency"])
        attributes = {}
        for key, value in values.items():
            if key in COLUMNS or key in PAYOUT_COLUMNS:
                continue
            if len(key) > MAX_ATTRIBUTE_NAME or len(value) > MAX_ATTRIBUTE_VALUE:
                raise RuleViolation(N_("%(field)s is too long (at most %(n)d characters).",
                                       field=key[:MAX_ATTRIBUTE_NAME], n=MAX_ATTRIBUTE_VALUE),
                                    field=key)
            attributes[key] = value
        return {"customer_id": customer_id, "order_ref": values["order_ref"],
                "basis_amount": parse_basis_amount(values["basis_amount"], currency),
                "currency": currency, "basis_date": parse_basis_date(values["basis_date"]),
                "attributes": attributes, "account": parse_bank_account(values)}

    return clean


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


def _duplicate(row: Row, seen: dict[tuple[str, str], int]) -> Message | None:
    """A second row for the same customer and order within the file is an error."""
    key = (row.raw.get("external_ref", "").strip(), row.values["order_ref"])
    if key in seen:
        return N_("external_ref and order_ref %(value)s already appear on line %(line)d",
                  value=f"{key[0]}, {key[1]}", line=seen[key])
    seen[key] = row.number
    return None


def validate_import(batch_id: int, checkpoint: Callable[[], None] | None = None) -> None:
    """Check every row; keep counts, the first errors and every rejected row. ``checkpoint``
    is called after each progress count (the job commits it, for the page)."""
    batch = db.session.get(EntitlementImport, batch_id)
    if batch is None or not batch.validating:
        return  # done already (the job may run twice)
    path = upload_path(batch)
    batch.status = ImportStatus.VALIDATING
    seen: dict[tuple[str, str], int] = {}
    total = valid = 0
    try:
        encoding = detect_encoding(path)
        _set_progress(batch_id, encoding=encoding)
        customers = event_customers(batch.event_id)
        with imports.RejectedRows(rejected_path(batch), read_header(path, encoding),
                                  FIRST_ERRORS) as rejected:
            for row in read_rows(path, encoding, customers):
                total += 1
                error = row.error or _duplicate(row, seen)
                if error is None:
                    valid += 1
                else:
                    rejected.add(row, error)
                if total % PROGRESS_EVERY == 0:
                    _set_progress(batch_id, processed_rows=total)
                    if checkpoint:
                        checkpoint()
    except RuleViolation as err:
        _fail(batch_id, as_message(err.text))
        return
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
    seen: dict[tuple[str, str], int] = {}
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
        for row in read_rows(path, encoding, customers):
            error = row.error or _duplicate(row, seen)
            if error is not None:
                uow.rollback()  # the rows flushed so far
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
