"""The bank's result file of a released batch: kept on upload, then applied by a job.

A file that cannot be read, that answers another batch, or that names none of this batch's
lines is refused whole and changes nothing. Otherwise every line is applied on its own and
its outcome recorded: a paid line pays its case (``portal.cases.services.record_payment``,
whose one payment per case makes a second import harmless), a rejected line keeps the
bank's reason and frees its case for another batch (the live-line index counts only pending
and paid lines), and a programme member whose payout failed twice becomes unclaimed. Lines
that match nothing, whose amount or currency differs from the batch's, or that contradict
what is recorded are reported in ``problems`` and change nothing. When no line of the batch
is pending any more, the batch is closed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, literal, select, update
from sqlalchemy.orm import load_only

from portal import config
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.cases.bulk_payments import PaymentItem, PaymentSource, record_payments
from portal.cases.models import Case, Payment
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, Message, term
from portal.imports import CONTROL_CHARACTER, too_large
from portal.models import among, utcnow
from portal.payouts.models import BatchStatus, LineStatus, PayoutBatch, PayoutLine, PayoutResult
from portal.payouts.result_parsing import PAID, REJECTED, ParsedResult, ResultLine
from portal.payouts.result_parsing import parse_result_file as parse
from portal.programmes import unclaimed

UPLOADERS = (Role.FINANCE, Role.ADMIN)
# A payout line's status as messages name it (``term("payout_line", status)``).
LINE_STATUS_LABELS = {LineStatus.PENDING: _l("no bank result yet"), LineStatus.PAID: _l("paid"),
                      LineStatus.REJECTED: _l("rejected")}
ACCEPTING = (BatchStatus.RELEASED, BatchStatus.CLOSED)
MAX_PROBLEMS = 1000  # listed one by one; beyond that, counted
IN_BATCH = 500
REASON_CODE = re.compile(r"^[A-Za-z0-9]{2,8}$")


class ResultStatus:
    UPLOADED = "uploaded"
    APPLYING = "applying"
    DONE = "done"
    FAILED = "failed"


BUSY = (ResultStatus.UPLOADED, ResultStatus.APPLYING)


def results_dir() -> Path:
    return config.instance_folder("payout-results", "PAYOUT_RESULT_DIR")


def upload_path(result: PayoutResult) -> Path:
    return results_dir() / f"{result.id}.dat"


def failure(result: PayoutResult) -> Message | None:
    """Why the file was refused, in the reader's language."""
    if not result.error:
        return None
    try:
        return Message.from_json(json.loads(result.error))
    except (ValueError, TypeError, KeyError):
        return Message(result.error)


def start_result(batch: PayoutBatch, stream: BinaryIO, filename: str, *,
                 actor: User) -> PayoutResult:
    """Keep the upload (streamed, size-limited, hashed) and create its row; a job applies it."""
    if actor.role not in UPLOADERS:
        raise RuleViolation(_("Your role cannot take this step."))
    if batch.status not in ACCEPTING:
        raise RuleViolation(_("Results can be imported only for a released batch; batch "
                              "%(ref)s is not released.", ref=batch.ref), field="file")
    filename = CONTROL_CHARACTER.sub("", filename)[:255] or "result"
    result = PayoutResult(batch_id=batch.id, filename=filename, sha256="", format="",
                          status=ResultStatus.UPLOADED, problems=[], uploaded_by_id=actor.id)
    db.session.add(result)
    db.session.flush()
    digest, size, path = hashlib.sha256(), 0, upload_path(result)
    try:
        with path.open("wb") as out:
            while chunk := stream.read(1 << 16):
                size += len(chunk)
                if size > config.MAX_UPLOAD_BYTES:
                    raise RuleViolation(too_large(), field="file")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise RuleViolation(_("The file is empty."), field="file")
    except RuleViolation:
        path.unlink(missing_ok=True)
        raise
    result.sha256 = digest.hexdigest()
    audit.record("payout_result.upload", "payout_result", result.id,
                 N_("Result file %(result)d uploaded for payout batch %(batch)s (bytes: "
                    "%(size)d)", result=result.id, batch=batch.ref, size=size),
                 after={"batch_id": batch.id, "sha256": result.sha256, "size": size},
                 actor=actor)
    return result


# --- applying -------------------------------------------------------------------------------


def _names_batch(reference: str, batch_ref: str) -> bool:
    """Whether a message or batch id from the file names this batch (``PB-7`` or
    ``PB-7-1``, not ``PB-70``)."""
    pattern = rf"(?<![A-Za-z0-9]){re.escape(batch_ref)}(?![A-Za-z0-9])"
    return re.search(pattern, reference) is not None


def _other_batches(ids: list[str], batch_id: int) -> Counter[str]:
    """How many of ``ids`` are lines of other batches, by those batches' refs."""
    found: Counter[str] = Counter()
    for start in range(0, len(ids), IN_BATCH):
        chunk = ids[start:start + IN_BATCH]
        found.update(db.session.scalars(
            select(PayoutBatch.ref).join(PayoutLine, PayoutLine.batch_id == PayoutBatch.id)
            .where(PayoutLine.end_to_end_id.in_(chunk), PayoutBatch.id != batch_id)))
    return found


def check_belongs(parsed: ParsedResult, batch: PayoutBatch, lines: dict[str, Any]) -> None:
    """Refuse the whole file when it answers another batch: its batch or original message
    id names another batch, or most of its lines are another batch's, or none is this
    batch's; also when it repeats a line."""
    if parsed.batch_ref and not _names_batch(parsed.batch_ref, batch.ref):
        named = [ref for ref in db.session.scalars(select(PayoutBatch.ref).where(
            literal(parsed.batch_ref).contains(PayoutBatch.ref)))
            if _names_batch(parsed.batch_ref, ref)]
        if named:  # a message id that names no batch at all is judged by its lines
            raise RuleViolation(N_("This result file answers %(other)s, not batch %(ref)s: "
                                   "nothing was applied. Upload it on its own batch.",
                                   other=named[0], ref=batch.ref), field="file")
    repeated = [e2e for e2e, n in Counter(r.end_to_end_id for r in parsed.lines).items()
                if n > 1]
    if repeated:
        raise RuleViolation(N_("The end-to-end id %(id)s appears more than once in the file: "
                               "nothing was applied.", id=repeated[0]), field="file")
    ours = sum(1 for r in parsed.lines if r.end_to_end_id in lines)
    others = _other_batches([r.end_to_end_id for r in parsed.lines
                             if r.end_to_end_id not in lines], batch.id)
    if ours == 0 or sum(others.values()) > ours:
        if others:
            raise RuleViolation(N_("This result file is for batch %(other)s (%(count)d of its "
                                   "lines are that batch's), not batch %(ref)s: nothing was "
                                   "applied.", other=others.most_common(1)[0][0],
                                   count=others.most_common(1)[0][1], ref=batch.ref),
                                field="file")
        raise RuleViolation(N_("None of the file's lines belongs to batch %(ref)s: nothing "
                               "was applied.", ref=batch.ref), field="file")


def _problem(kind: str, row: ResultLine, message: Message) -> dict[str, Any]:
    return {"kind": kind, "line": row.number, "end_to_end_id": row.end_to_end_id,
            "message": message.to_json()}


class _Outcome:
    """What applying the file does, gathered row by row and written in bulk at the end."""

    def __init__(self) -> None:
        self.paid = self.rejected = self.unchanged = 0
        self.problems: list[dict[str, Any]] = []
        self.line_updates: list[dict[str, Any]] = []
        self.payments: list[tuple[PaymentItem, ResultLine]] = []
        # (case id, end-to-end id, case ref, the bank's reason code, audit details)
        self.rejections: list[tuple[int, str, str, str, dict[str, Any]]] = []
        self.failed_programme_cases: list[int] = []

    def report(self, kind: str, row: ResultLine, message: Message) -> None:
        self.problems.append(_problem(kind, row, message))

    def stored_problems(self) -> list[dict[str, Any]]:
        listed = self.problems[:MAX_PROBLEMS]
        if len(self.problems) > MAX_PROBLEMS:
            listed.append({"kind": "more", "count": len(self.problems) - MAX_PROBLEMS,
                           "message": N_("… and %(count)d more problems like these.",
                                         count=len(self.problems) - MAX_PROBLEMS).to_json()})
        if self.unchanged:
            listed.append({"kind": "unchanged", "count": self.unchanged,
                           "message": N_("%(count)d line(s) already recorded as the file "
                                         "reports them: nothing changed.",
                                         count=self.unchanged).to_json()})
        return listed


def _write_lines(updates: list[dict[str, Any]], result: PayoutResult) -> None:
    """Move the pending lines to paid or rejected, in chunks of one statement each (one
    compiled statement, executed for many rows: a statement that inlines 500 rows' values is
    compiled anew each time, which cost more than it saved). The batch is locked for the job,
    so every line is still pending; a count checks it."""
    table = PayoutLine.__table__
    statement = (update(table)
                 .where(table.c.id == bindparam("line_id"),
                        table.c.status == LineStatus.PENDING)
                 .values(status=bindparam("new_status"), bank_ref=bindparam("new_bank_ref"),
                         reason=bindparam("new_reason"), result_id=result.id,
                         updated_at=utcnow()))
    for start in range(0, len(updates), IN_BATCH):
        chunk = updates[start:start + IN_BATCH]
        db.session.execute(statement, chunk)
        done = db.session.scalar(select(func.count(PayoutLine.id)).where(
            among(PayoutLine.id, [u["line_id"] for u in chunk]),
            PayoutLine.result_id == result.id))
        if done != len(chunk):
            raise RuntimeError("payout lines changed while the result was applied")


def _apply_row(row: ResultLine, line: Any, case: Case | None,
               paid_cases: dict[int, str], outcome: _Outcome) -> None:
    if line is None or case is None:
        outcome.report("unknown", row, N_("No line of this batch has the end-to-end id "
                                          "%(id)s: nothing changed.", id=row.end_to_end_id))
        return
    if row.amount is not None and (row.amount != line.amount
                                   or row.currency != line.currency):
        outcome.report("amount_differs", row, N_(
            "Refused: the file says %(amount)s %(currency)s, the batch line %(id)s is "
            "%(expected)s %(expected_currency)s. Nothing changed.", amount=str(row.amount),
            currency=row.currency, id=line.end_to_end_id, expected=str(line.amount),
            expected_currency=line.currency))
        return
    if row.status is None:
        outcome.report("not_final", row, N_("The bank does not report line %(id)s as final "
                                            "(%(reason)s): nothing changed.",
                                            id=line.end_to_end_id, reason=row.reason))
        return
    if line.status == row.status:
        outcome.unchanged += 1
        return
    if line.status != LineStatus.PENDING:
        outcome.report("contradicts", row, N_(
            "Line %(id)s is recorded as %(recorded)s; the file says %(reported)s. Nothing "
            "changed: check with the bank.", id=line.end_to_end_id,
            recorded=term("payout_line", line.status), reported=term("payout_line", row.status)))
        return
    outcome.line_updates.append({
        "line_id": line.id, "new_status": row.status, "new_bank_ref": row.bank_ref or None,
        "new_reason": (row.reason or None) if row.status == REJECTED else None})
    if row.status == PAID:
        outcome.paid += 1
        if case.id in paid_cases:
            outcome.report("case_paid_before", row, N_(
                "Case %(case)s was already paid (payout %(payout)s) before this result: the "
                "line is recorded as paid, no second payment.", case=case.ref,
                payout=paid_cases[case.id]))
        else:
            outcome.payments.append((PaymentItem(case, line.amount, line.end_to_end_id), row))
        return
    outcome.rejected += 1
    code = row.reason if REASON_CODE.match(row.reason or "") else ""
    outcome.rejections.append((case.id, line.end_to_end_id, case.ref, code, {
        "batch_id": line.batch_id, "line_id": line.id, "reason_code": code or None}))
    if case.programme_id is not None:
        outcome.failed_programme_cases.append(case.id)


def _pay(outcome: _Outcome, actor: User, result: PayoutResult, batch: PayoutBatch) -> None:
    refused = record_payments([item for item, _row in outcome.payments], actor=actor,
                              source=PaymentSource("payout_result", result.id, batch.ref))
    for item, row in outcome.payments:
        if item.case.id in refused:
            reason = refused[item.case.id]
            outcome.report("case_not_paid", row, N_(
                "The bank paid line %(id)s but case %(case)s could not be recorded as paid: "
                "%(reason)s", id=item.payout_ref, case=item.case.ref, reason=reason))


def _paid_cases(case_ids: list[int]) -> dict[int, str]:
    """The cases already paid, with their payout reference."""
    found: dict[int, str] = {}
    for start in range(0, len(case_ids), IN_BATCH):
        for case_id, payout_ref in db.session.execute(
                select(Payment.case_id, Payment.payout_ref).where(
                    among(Payment.case_id, case_ids[start:start + IN_BATCH]))):
            found[case_id] = payout_ref
    return found


def _cases(case_ids: list[int]) -> dict[int, Case]:
    """The batch's cases with the columns paying them reads (the others load if asked)."""
    found: dict[int, Case] = {}
    columns = load_only(Case.id, Case.ref, Case.event_id, Case.status, Case.approved_amount,
                        Case.currency, Case.programme_id, Case.lock_version, Case.updated_at)
    for start in range(0, len(case_ids), IN_BATCH):
        found.update({c.id: c for c in db.session.scalars(
            select(Case).options(columns).where(among(Case.id, case_ids[start:start + IN_BATCH])))})
    return found


def _close_if_done(batch: PayoutBatch, actor: User) -> bool:
    pending = db.session.scalar(select(PayoutLine.id).where(
        PayoutLine.batch_id == batch.id, PayoutLine.status == LineStatus.PENDING).limit(1))
    if pending is not None or batch.status != BatchStatus.RELEASED:
        return False
    closed = db.session.execute(
        update(PayoutBatch).where(PayoutBatch.id == batch.id,
                                  PayoutBatch.status == BatchStatus.RELEASED)
        .values(status=BatchStatus.CLOSED, lock_version=PayoutBatch.lock_version + 1)
        .execution_options(synchronize_session=False)).rowcount == 1
    if closed:
        db.session.expire(batch)
        audit.record("payout_batch.closed", "payout_batch", batch.id,
                     N_("Payout batch %(ref)s closed: every line is paid or rejected",
                        ref=batch.ref),
                     before={"status": BatchStatus.RELEASED},
                     after={"status": BatchStatus.CLOSED}, actor=actor)
    return closed


def refuse_file(result: PayoutResult, reason: Message, actor: User | None) -> None:
    """Record why the whole file was refused (the caller rolled its work back)."""
    result.status, result.error, result.finished_at = (
        ResultStatus.FAILED, json.dumps(reason.to_json()), utcnow())
    audit.record("payout_result.refused", "payout_result", result.id,
                 N_("Result file %(result)d of payout batch %(batch)d refused whole: "
                    "%(reason)s", result=result.id, batch=result.batch_id, reason=reason),
                 after={"batch_id": result.batch_id}, actor=actor)


def apply_result(result_id: int) -> None:
    """Apply an uploaded result file (the job's work; its unit of work commits it)."""
    result = db.session.get(PayoutResult, result_id)
    if result is None or result.status not in BUSY:
        return
    batch = result.batch
    # Imports of one batch's results take turns (a no-op on SQLite, whose writers do anyway).
    db.session.execute(select(PayoutBatch.id).where(PayoutBatch.id == batch.id)
                       .with_for_update())
    actor = db.session.get(User, result.uploaded_by_id) if result.uploaded_by_id else None
    # Plain rows, not ORM objects: a batch may hold 100,000 lines, each read once.
    lines = {line.end_to_end_id: line for line in db.session.execute(
        select(PayoutLine.id, PayoutLine.batch_id, PayoutLine.case_id,
               PayoutLine.end_to_end_id, PayoutLine.amount, PayoutLine.currency,
               PayoutLine.status).where(PayoutLine.batch_id == batch.id))}
    try:
        if actor is None or actor.role not in UPLOADERS:
            raise RuleViolation(N_("The account that uploaded the file may no longer apply "
                                   "it."))
        parsed = parse(upload_path(result))
        check_belongs(parsed, batch, lines)
    except RuleViolation as err:
        text = err.text if isinstance(err.text, Message) else Message(str(err.text))
        refuse_file(result, text, actor)
        return
    result.format = parsed.format
    case_ids = sorted({line.case_id for line in lines.values()})
    cases, paid_cases = _cases(case_ids), _paid_cases(case_ids)
    outcome = _Outcome()
    for row in parsed.lines:
        line = lines.get(row.end_to_end_id)
        _apply_row(row, line, cases.get(line.case_id) if line else None, paid_cases, outcome)
    _write_lines(outcome.line_updates, result)
    _pay(outcome, actor, result, batch)
    if outcome.rejections:
        audit.record_many("case.payout_rejected", "case", [
            (case_id, N_("Payout %(id)s of case %(case)s rejected by the bank (%(code)s); the "
                         "case can be paid in another batch", id=e2e, case=ref,
                         code=code or "-"), after)
            for case_id, e2e, ref, code, after in outcome.rejections], actor=actor)
    unclaimed.record_failed_payouts(outcome.failed_programme_cases)
    result.paid_count, result.rejected_count = outcome.paid, outcome.rejected
    result.problems = outcome.stored_problems()
    result.status, result.finished_at = ResultStatus.DONE, utcnow()
    kinds = Counter(p["kind"] for p in outcome.problems)
    audit.record("payout_result.applied", "payout_result", result.id,
                 N_("Result file %(result)d (%(format)s) applied to payout batch %(batch)s: "
                    "%(paid)d paid, %(rejected)d rejected, %(problems)d problem(s), "
                    "%(unchanged)d unchanged", result=result.id, format=parsed.format,
                    batch=batch.ref, paid=outcome.paid, rejected=outcome.rejected,
                    problems=len(outcome.problems), unchanged=outcome.unchanged),
                 after={"batch_id": batch.id, "sha256": result.sha256,
                        "format": parsed.format, "paid": outcome.paid,
                        "rejected": outcome.rejected, "unchanged": outcome.unchanged,
                        "problems": dict(kinds)}, actor=actor)
    _close_if_done(batch, actor)
