"""The files a released batch is given to the bank as — a CSV in a bank's profile
(``portal.payouts.profiles``) or ISO 20022 pain.001 (``portal.payouts.pain001``, bank-account
batches only) — made by a job through the shared document pipeline (``portal.documents``).

The job reads the batch's lines (the sealed details they were prepared with, opened only
here), writes the file, checks that its rows and sum agree with the batch and, for pain.001,
that it validates against the ISO schema; only then is the file stored and offered, with its
SHA-256, row count and control sum recorded on the ``PayoutFile`` row and in the audit trail.
A check that fails leaves the row "failed" with the reason shown on the batch's page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal import documents, exports, jobs
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.cases.models import Case
from portal.customers import payout
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, Message
from portal.models import PdfStatus
from portal.payouts import pain001, profiles
from portal.payouts.models import BatchStatus, PayoutBatch, PayoutFile, PayoutLine

CSV, PAIN001 = "csv", "pain.001"
FORMAT_LABELS = {CSV: _l("CSV for the bank"), PAIN001: _l("ISO 20022 pain.001 (XML)")}
# Files are made for a batch once it is released (and still once its results are in).
FILE_STATUSES = (BatchStatus.RELEASED, BatchStatus.CLOSED)
REQUESTERS = frozenset({Role.FINANCE, Role.ADMIN})
READ_CHUNK = 2000


@dataclass(frozen=True)
class LineData:
    """One line as a file shows it (bank details opened from the sealed copy)."""

    end_to_end_id: str
    batch_ref: str
    case_ref: str
    order_ref: str
    customer_ref: str
    holder: str
    account: str
    is_iban: bool
    bank: str
    amount: Decimal
    currency: str

    @property
    def remittance(self) -> str:
        return f"{self.case_ref} {self.order_ref}"

    def value(self, field: str) -> object:
        return getattr(self, field)


def may_have_files(_user: User, batch: PayoutBatch) -> bool:
    return batch.status in FILE_STATUSES


def formats_for(batch: PayoutBatch) -> list[str]:
    return [CSV, PAIN001] if batch.method == payout.BANK else [CSV]


def request_file(batch: PayoutBatch, *, format: str, profile: str = "",
                 actor: User) -> tuple[PayoutFile, bool]:
    """The batch's file in ``format`` (and CSV ``profile``): the existing row, or a new one
    the caller queues after the commit (``documents.queue_after_commit``)."""
    if actor.role not in REQUESTERS:
        raise RuleViolation(_("Your role cannot take this step."))
    if batch.status not in FILE_STATUSES:
        raise RuleViolation(_("Files are made only for a released batch."))
    if format not in formats_for(batch):
        raise RuleViolation(_("pain.001 is only for batches paid to bank accounts."),
                            field="format")
    if format == CSV:
        if profiles.profile(profile) is None:
            raise RuleViolation(_("Choose the bank's CSV profile."), field="profile")
    else:
        profile = ""
    before = db.session.scalar(select(PayoutFile.status).where(
        PayoutFile.batch_id == batch.id, PayoutFile.format == format,
        PayoutFile.profile == profile).order_by(PayoutFile.id.desc()).limit(1))
    row, created = documents.request(PayoutFile, {"batch_id": batch.id, "format": format,
                                                  "profile": profile},
                                     requested_by_id=actor.id)
    if created or before == PdfStatus.FAILED:  # a new file, or a failed one asked again
        audit.record("payout_file.request", "payout_batch", batch.id,
                     N_("File %(format)s %(profile)s of payout batch %(ref)s requested",
                        format=format, profile=profile, ref=batch.ref),
                     after={"file_id": row.id, "format": format, "profile": profile},
                     actor=actor)
    return row, created


# --- the job's part --------------------------------------------------------------------------

def batch_lines(batch: PayoutBatch) -> Iterator[LineData]:
    """Every line of the batch in line order, with its details opened (streamed)."""
    stmt = (select(PayoutLine.end_to_end_id, PayoutLine.amount, PayoutLine.currency,
                   PayoutLine.payout_sealed, Case.ref, Case.order_ref, Case.customer_id,
                   Customer.external_ref)
            .join(Case, Case.id == PayoutLine.case_id)
            .join(Customer, Customer.id == Case.customer_id)
            .where(PayoutLine.batch_id == batch.id).order_by(PayoutLine.id)
            .execution_options(yield_per=READ_CHUNK))
    for e2e, amount, currency, sealed, case_ref, order_ref, customer_id, customer_ref \
            in db.session.execute(stmt):
        account = payout.unseal(customer_id, sealed) if sealed else None
        yield LineData(e2e, batch.ref, case_ref, order_ref, customer_ref,
                       account.holder if account else "", account.account if account else "",
                       bool(account and account.is_iban), account.bank if account else "",
                       amount, currency)


class Totals:
    """Counts the rows a file is written with and adds their amounts."""

    def __init__(self) -> None:
        self.rows, self.total = 0, Decimal("0.00")

    def counted(self, lines: Iterator[LineData]) -> Iterator[LineData]:
        for line in lines:
            self.rows += 1
            self.total += line.amount
            yield line


def write_csv(batch: PayoutBatch, profile: profiles.CsvProfile, totals: Totals) -> bytes:
    """The profile's columns through the core CSV writer (formulas escaped); the profile's
    encoding adds the BOM where it has one (``utf-8-sig``)."""
    rows = ([line.value(field) for field in profile.fields]
            for line in totals.counted(batch_lines(batch)))
    return "".join(exports.stream(profile.headers, rows, bom=False,
                                  delimiter=profile.delimiter)).encode(profile.encoding)


def debtor() -> pain001.Debtor:
    config = current_app.config
    account = (config.get("PAYOUT_DEBTOR_ACCOUNT") or "").replace(" ", "")
    if not account:
        raise RuleViolation(_("The account batches are paid from is not set "
                              "(PAYOUT_DEBTOR_ACCOUNT)."))
    return pain001.Debtor(config.get("PAYOUT_DEBTOR_NAME") or config["PORTAL_COMPANY_NAME"],
                          account, config.get("PAYOUT_DEBTOR_BIC") or "")


def write_pain001(batch: PayoutBatch, totals: Totals) -> bytes:
    transfers = (pain001.Transfer(line.end_to_end_id, line.amount, line.holder, line.account,
                                  line.is_iban, line.bank, line.remittance)
                 for line in totals.counted(batch_lines(batch)))
    return pain001.write(message_id=batch.ref, created_at=batch.released_at or batch.prepared_at,
                         currency=batch.currency, count=batch.line_count,
                         control_sum=batch.control_sum, debtor=debtor(), transfers=transfers)


def _fail(row: PayoutFile, reason: Message) -> None:
    """The row fails with ``reason`` kept as a message, read in the reader's language."""
    jobs.record_failure(PayoutFile, row.id, json.dumps(reason.to_json(), ensure_ascii=False))


def failure(row: PayoutFile) -> Message | None:
    """Why the file was not made (a message, or the text of an unexpected error)."""
    if not row.error:
        return None
    try:
        return Message.from_json(json.loads(row.error))
    except (ValueError, TypeError, KeyError):
        return Message(row.error)


def render(row: PayoutFile) -> bytes | None:
    """The file's bytes, checked; None (the row failed with the reason) when a check fails."""
    batch = row.batch
    if batch.status not in FILE_STATUSES:
        _fail(row, N_("Files are made only for a released batch."))
        return None
    totals = Totals()
    if row.format == PAIN001:
        if not (current_app.config.get("PAYOUT_DEBTOR_ACCOUNT") or "").strip():
            _fail(row, N_("The account batches are paid from is not set "
                          "(PAYOUT_DEBTOR_ACCOUNT)."))
            return None
        data = write_pain001(batch, totals)
        try:
            validated = pain001.validate(data)
        except pain001.InvalidFile as err:
            _fail(row, N_("The pain.001 file does not validate against the ISO 20022 schema, "
                         "so it is not offered: %(error)s", error=str(err)))
            return None
        if validated != totals.rows:
            _fail(row, N_("The pain.001 file holds %(found)d transfers instead of %(rows)d.",
                         found=validated, rows=totals.rows))
            return None
    else:
        profile = profiles.profile(row.profile)
        if profile is None:
            _fail(row, N_("There is no CSV profile %(name)s.", name=row.profile))
            return None
        data = write_csv(batch, profile, totals)
    if (totals.rows, totals.total) != (batch.line_count, batch.control_sum):
        _fail(row, N_("The file holds %(rows)d rows for %(total)s, but the batch %(count)d "
                     "lines for %(sum)s; it is not offered.", rows=totals.rows,
                     total=str(totals.total), count=batch.line_count,
                     sum=str(batch.control_sum)))
        return None
    row.row_count, row.control_sum = totals.rows, totals.total
    audit.record("payout_file.made", "payout_batch", batch.id,
                 N_("File %(format)s %(profile)s of payout batch %(ref)s made: %(rows)d rows, "
                    "%(total)s %(currency)s, SHA-256 %(sha256)s", format=row.format,
                    profile=row.profile, ref=batch.ref, rows=totals.rows,
                    total=str(totals.total), currency=batch.currency,
                    sha256=hashlib.sha256(data).hexdigest()),
                 after={"file_id": row.id, "sha256": hashlib.sha256(data).hexdigest(),
                        "row_count": totals.rows, "control_sum": str(totals.total)})
    return data


def _download_name(row: PayoutFile) -> str:
    if row.format == PAIN001:
        return f"{row.batch.ref}-pain.001.xml"
    return f"{row.batch.ref}-{row.profile}.csv"


def _mimetype(row: PayoutFile) -> str:
    if row.format == PAIN001:
        return "application/xml"
    encoding = getattr(profiles.profile(row.profile), "encoding", "utf-8")
    return f"text/csv; charset={'utf-8' if encoding.startswith('utf') else encoding}"


PIPELINE = documents.Pipeline("payout-file", PayoutFile, render=render, views="payouts",
                              download_name=_download_name, mimetype=_mimetype,
                              suffix=".payout", attachment=True)
