"""Customer rules: validation, hand edits, and the streamed CSV import.

The import reads the file twice as a stream (validate, then import), never whole, so 100,000
rows keep memory flat. It imports every valid row in one transaction or nothing, and a known
``external_ref`` updates its customer instead of adding a second one.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update

from portal.audit import services as audit
from portal.auth.models import User
from portal.customers.models import Customer, ImportBatch
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.models import utcnow

COLUMNS = ("external_ref", "name", "company", "email", "phone", "locale", "tags")
REQUIRED_COLUMNS = ("external_ref", "name")
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
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
LIMITS = {"external_ref": 64, "name": 200, "company": 200, "email": 254, "phone": 40}


def clean_customer(raw: dict[str, str]) -> dict[str, Any]:
    """A valid customer's fields, or RuleViolation naming the first bad field."""
    values = {key: (raw.get(key) or "").strip() for key in COLUMNS}
    for key in REQUIRED_COLUMNS:
        if not values[key]:
            raise RuleViolation(_("%(field)s is required.", field=key), field=key)
    for key, limit in LIMITS.items():
        if len(values[key]) > limit:
            raise RuleViolation(_("%(field)s is too long (at most %(n)d characters).",
                                  field=key, n=limit), field=key)
    email = values["email"].lower()
    if email and not EMAIL_RE.match(email):
        raise RuleViolation(_("%(value)s is not an e-mail address.", value=values["email"]),
                            field="email")
    phone = values["phone"]
    if phone and not PHONE_RE.match(phone):
        raise RuleViolation(_("%(value)s does not look like a phone number.", value=phone),
                            field="phone")
    locale = LOCALE_ALIASES.get(values["locale"].lower().replace(" ", ""))
    if locale is None:
        raise RuleViolation(_("Unknown language %(value)s (use zh_CN or en).",
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
                 f"Customer #{customer.id} added by hand",
                 after=customer.audit_state(), actor=actor)
    db.session.commit()
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
                 f"Customer #{customer.id} edited", before=before,
                 after=customer.audit_state(), actor=actor)
    db.session.commit()
    return True


# --- CSV import ------------------------------------------------------------------------------


def imports_dir() -> Path:
    path = Path(current_app.config.get("IMPORT_DIR") or Path(current_app.instance_path) / "imports")
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_path(batch: ImportBatch) -> Path:
    return imports_dir() / f"{batch.id}.csv"


def rejected_path(batch: ImportBatch) -> Path:
    return imports_dir() / f"{batch.id}-rejected.csv"


def start_import(event: Event, stream: BinaryIO, filename: str, *, actor: User) -> ImportBatch:
    """Keep the upload on disk (streamed, size-limited) and create its row."""
    batch = ImportBatch(event_id=event.id, uploaded_by_id=actor.id, filename=filename[:255],
                        sha256="", size=0, status="uploaded", first_errors=[])
    db.session.add(batch)
    db.session.flush()
    digest, size = hashlib.sha256(), 0
    path = upload_path(batch)
    try:
        with path.open("wb") as out:
            while chunk := stream.read(1 << 16):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise RuleViolation(_("The file is larger than 64 MB; split it."),
                                        field="file")
                digest.update(chunk)
                out.write(chunk)
    except RuleViolation:
        path.unlink(missing_ok=True)
        db.session.rollback()
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        db.session.rollback()
        raise RuleViolation(_("The file is empty."), field="file")
    batch.sha256, batch.size = digest.hexdigest(), size
    audit.record("customer_import.upload", "customer_import", batch.id,
                 f"CSV {filename} uploaded for event {event.id} ({size} bytes)",
                 after={"sha256": batch.sha256, "size": size}, actor=actor)
    db.session.commit()
    return batch


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes as such, else GB18030 (what
    Chinese Excel saves; a superset of GBK)."""
    with path.open("rb") as fh:
        if fh.read(3) == codecs.BOM_UTF8:
            return "utf-8-sig"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := fh.read(1 << 16):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8"


@dataclass
class Row:
    number: int  # the line in the file where the record starts
    raw: dict[str, str]
    values: dict[str, Any] | None
    error: str | None


def read_rows(path: Path, encoding: str) -> Iterator[Row]:
    """Stream the records of a customer CSV, each validated; blank lines are skipped."""
    with path.open(newline="", encoding=encoding, errors="strict") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise RuleViolation(_("The file is empty.")) from None
        names = [h.strip().lstrip("\ufeff").lower() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise RuleViolation(_("Missing column(s): %(cols)s. Expected: %(all)s.",
                                  cols=", ".join(missing), all=", ".join(COLUMNS)))
        line = reader.line_num + 1
        for record in reader:
            number, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            raw = {name: record[i] if i < len(record) else "" for i, name in enumerate(names)}
            if len(record) > len(names):
                yield Row(number, raw, None, _("more cells than columns"))
                continue
            try:
                yield Row(number, raw, clean_customer(raw), None)
            except RuleViolation as err:
                yield Row(number, raw, None, err.message)


def _set_progress(batch_id: int, **values: Any) -> None:
    db.session.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(**values))
    db.session.commit()


def validate_import(batch_id: int) -> None:
    """Check every row; keep counts, the first errors and a CSV of all rejected rows."""
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or batch.status not in ("uploaded", "validating"):
        return  # done already (the job may run twice)
    path = upload_path(batch)
    batch.status, batch.encoding = "validating", detect_encoding(path)
    db.session.commit()
    seen: dict[str, int] = {}
    total = valid = errors = 0
    first: list[dict[str, Any]] = []
    try:
        with rejected_path(batch).open("w", newline="", encoding="utf-8-sig") as out:
            writer = csv.writer(out)
            writer.writerow(["row", "reason", *COLUMNS])
            for row in read_rows(path, batch.encoding):
                total += 1
                error = row.error
                if error is None and row.values["external_ref"] in seen:
                    error = _("external_ref %(ref)s already appears in row %(row)d",
                              ref=row.values["external_ref"], row=seen[row.values["external_ref"]])
                if error is None:
                    seen[row.values["external_ref"]] = row.number
                    valid += 1
                else:
                    errors += 1
                    writer.writerow([row.number, error, *(row.raw.get(c, "") for c in COLUMNS)])
                    if len(first) < FIRST_ERRORS:
                        first.append({"row": row.number, "error": error})
                if total % PROGRESS_EVERY == 0:
                    _set_progress(batch_id, processed_rows=total)
    except (RuleViolation, UnicodeDecodeError, csv.Error) as err:
        message = err.message if isinstance(err, RuleViolation) else str(err)[:300]
        _set_progress(batch_id, status="failed", message=message, finished_at=utcnow())
        return
    _set_progress(batch_id, status="validated", processed_rows=total, total_rows=total,
                  valid_rows=valid, error_rows=errors, first_errors=first)


def confirm_import(batch: ImportBatch, *, actor: User) -> None:
    if batch.status != "validated":
        raise RuleViolation(_("This file is not ready to import."))
    if batch.valid_rows == 0:
        raise RuleViolation(_("There are no valid rows to import."))
    batch.status = "importing"
    audit.record("customer_import.confirm", "customer_import", batch.id,
                 f"Import of {batch.valid_rows} valid rows confirmed", actor=actor)
    db.session.commit()


def discard_import(batch: ImportBatch, *, actor: User) -> None:
    if batch.status not in ("validated", "failed"):
        raise RuleViolation(_("This file can no longer be discarded."))
    batch.status, batch.finished_at = "discarded", utcnow()
    audit.record("customer_import.discard", "customer_import", batch.id,
                 "Import discarded; nothing was imported", actor=actor)
    db.session.commit()
    upload_path(batch).unlink(missing_ok=True)


def _upsert_statement() -> Any:
    """INSERT … ON CONFLICT (event_id, external_ref) DO UPDATE: one statement per batch, on
    both databases, so a known reference updates its customer and never adds a second one."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = dialect_insert(Customer.__table__)
    columns = ("name", "company", "email", "phone", "locale", "tags", "updated_at")
    return stmt.on_conflict_do_update(
        index_elements=["event_id", "external_ref"],
        set_={c: stmt.excluded[c] for c in columns})


def run_import(batch_id: int, progress: Callable[[int], None] | None = None) -> None:
    """Import every valid row in one transaction: all of them, or none if anything fails."""
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or batch.status != "importing":
        return
    event_id, encoding = batch.event_id, batch.encoding or "utf-8"
    path = upload_path(batch)
    seen: set[str] = set()
    pending: list[dict[str, Any]] = []
    now = utcnow()
    upsert = _upsert_statement()
    count = select(func.count(Customer.id)).where(Customer.event_id == event_id)
    before = db.session.scalar(count) or 0

    def flush() -> None:
        db.session.execute(upsert, [{**p, "event_id": event_id, "created_at": now,
                                     "updated_at": now} for p in pending])
        pending.clear()

    try:
        for row in read_rows(path, encoding):
            if row.values is None or row.values["external_ref"] in seen:
                continue
            seen.add(row.values["external_ref"])
            pending.append(row.values)
            if len(pending) >= BATCH:
                flush()
                if progress:
                    progress(len(seen))
        if pending:
            flush()
        created = (db.session.scalar(count) or 0) - before
        updated = len(seen) - created
        batch = db.session.get(ImportBatch, batch_id)
        batch.status, batch.finished_at = "imported", utcnow()
        batch.created_count, batch.updated_count = created, updated
        audit.record("customer_import.done", "customer_import", batch.id,
                     f"{created} customers added and {updated} updated from {batch.filename} "
                     f"(sha256 {batch.sha256[:12]}…)",
                     after={"created": created, "updated": updated, "sha256": batch.sha256})
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        _set_progress(batch_id, status="failed", message=str(exc)[:300], finished_at=utcnow())
        raise
