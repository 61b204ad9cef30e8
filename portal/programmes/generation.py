"""Creating a signed-off programme's cases: one member and one approved case per eligible
customer, in chunks, by a job (``portal.programmes.tasks``).

- ``start_generation`` moves a programme from approved to generating (a conditional update:
  two clicks start it once) and is audited; the view queues the job after the commit.
- The job first checks that legal's sign-off still binds the rules, terms, entitlements and
  amounts (``services.holding_preview``, whose pass also counts the members to create); if
  not, it stops with the reason shown and creates nothing.
- It then computes the customers in id order, ``CHUNK_SIZE`` at a time, and commits each chunk
  with the programme's ``generated_count`` (a documented exception to one commit per job: the
  progress bar reads it, and a killed job keeps what it did). Per chunk: one bulk INSERT of
  cases (``status`` approved at the computed amount, ``source`` programme, ``programme_id``
  set; no per-case sign-off: the programme's one sign-off covers them), one of members
  (unique per programme and customer), and the audit entries.
- Audit: one entry per chunk, on the programme (``programme.cases_created``), holding every
  case it created as [case id, ref, customer id, amount] with the counts, plus one entry when
  generation starts and one when it finishes or stops. Not one entry per case: that cost a
  third of the time at 100,000 customers (an entry is hashed, keyed and inserted one by one)
  and repeated the same fact 100,000 times. A case's own history (entries by subject) thus
  starts with its first change; its page shows where it came from: "opened by a remediation
  programme", with a link to programme P while it is under it, and the ``programme.member.
  left`` entry (subject: the case) names P once an agent's edit took it out.
- Written-off customers (below the low-value threshold, when the programme writes them off)
  become members with status ``written_off`` and no case.
- Customers without an e-mail address still get their case (they are owed it), but cannot be
  told: their member is ``unclaimed`` with reason ``no_address`` and the amount held, from the
  start (``portal.programmes.unclaimed``).
- Resumable and idempotent: a resumed job starts after the highest customer id that has a
  member (chunks are committed whole, in id order) and skips customers that already have
  one; the unique (programme, customer) constraint guards the rest. A second run after the
  end finds the programme running and does nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, insert, select, update

from portal import refs, uow
from portal.accounts import User
from portal.audit import services as audit
from portal.cases.models import CLOSED_STATUSES, Case, CaseStatus, order_ref_key
from portal.cases.settings import sla_hours
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, Message
from portal.models import utcnow
from portal.programmes import rules, services
from portal.programmes.models import MemberStatus, Programme, ProgrammeMember, ProgrammeStatus
from portal.signoffs.models import SignoffRequest

log = logging.getLogger(__name__)

CHUNK_SIZE = 1000
# The claim's own reason when a job keeps dying (``portal.jobs.take``), kept as plain text.
GAVE_UP = re.compile(r"^Gave up after (\d+) attempts")
# The case's reason, from the event's kind.
REASON_BY_EVENT_KIND = {"shutdown": "business_shutdown", "incident": "service_outage"}


def programme_order_ref(programme_id: int) -> str:
    """The order reference of a programme's cases ("PRG-12"): one per customer and kind, so
    it never meets the unique open case per order of an agent's case for a real order."""
    return f"PRG-{programme_id}"


def error_message(programme: Programme) -> Message | None:
    """Why case generation stopped, to be read in any language (``error`` holds a Message as
    JSON; the claim's give-up text is plain English)."""
    if not programme.error:
        return None
    try:
        return Message.from_json(json.loads(programme.error))
    except (ValueError, TypeError, KeyError):
        gave_up = GAVE_UP.match(programme.error)
        if gave_up:
            return N_("Gave up after %(num)s attempts: the worker stopped each time before "
                      "finishing. What was created is kept; start again to resume.",
                      num=int(gave_up.group(1)))
        return Message(programme.error)


def progress_percent(programme: Programme) -> int:
    if programme.status in (ProgrammeStatus.RUNNING, ProgrammeStatus.CLOSED):
        return 100
    if not programme.eligible_count:
        return 0
    return min(100, programme.generated_count * 100 // programme.eligible_count)


# --- starting ---------------------------------------------------------------------------------


def start_generation(programme: Programme, actor: User) -> None:
    """Approved → generating (once, however many press the button); the caller queues the job
    (``tasks.queue_generation``) after the commit. A programme stopped with a reason is
    approved again, so starting again resumes it."""
    if programme.status != ProgrammeStatus.APPROVED:
        raise RuleViolation(_("Cases can be created only for a signed-off programme that has "
                              "none yet."))
    started = db.session.execute(
        update(Programme)
        .where(Programme.id == programme.id, Programme.status == ProgrammeStatus.APPROVED)
        .values(status=ProgrammeStatus.GENERATING, error=None, attempts=0, claimed_at=None,
                finished_at=None, updated_at=utcnow(), lock_version=Programme.lock_version + 1)
        .execution_options(synchronize_session=False)).rowcount == 1
    if not started:
        raise RuleViolation(_("Someone else started creating the cases already."))
    db.session.refresh(programme)
    audit.record("programme.generate", "programme", programme.id,
                 N_("Programme %(id)s: creating the cases started", id=programme.id),
                 after={"status": programme.status}, actor=actor)


# --- the job's work ---------------------------------------------------------------------------


class _Context:
    """What every chunk of one run needs, read once."""

    def __init__(self, programme: Programme) -> None:
        self.programme_id = programme.id
        self.event_id = programme.event_id
        self.kind = programme.kind
        self.currency = programme.currency
        self.order_ref = programme_order_ref(programme.id)
        event = db.session.get(Event, programme.event_id)
        self.reason = REASON_BY_EVENT_KIND.get(event.kind, "other")
        self.due_at = utcnow() + timedelta(hours=sla_hours(event.severity))
        self.approved_by_id = (db.session.scalar(
            select(SignoffRequest.decided_by_id).where(SignoffRequest.id == programme.signoff_id))
            if programme.signoff_id else None)
        self.rules = rules.Rules.parse(programme.rules)


def _stop(programme_id: int, reason: Message, checkpoint: Callable[[], None]) -> None:
    """Stop with ``reason`` shown: back to approved (starting again resumes), audited."""
    db.session.execute(
        update(Programme)
        .where(Programme.id == programme_id, Programme.status == ProgrammeStatus.GENERATING)
        .values(status=ProgrammeStatus.APPROVED, error=json.dumps(reason.to_json()),
                updated_at=utcnow(), lock_version=Programme.lock_version + 1)
        .execution_options(synchronize_session=False))
    audit.record("programme.generate.stopped", "programme", programme_id,
                 N_("Programme %(id)s: creating the cases stopped: %(reason)s",
                    id=programme_id, reason=reason))
    checkpoint()


def _create_chunk(ctx: _Context, rows: list[rules.Row], after: int, last: int) -> dict[str, int]:
    """Members and cases for one chunk of computed rows (those that become members), the
    customers with ids after ``after`` up to ``last``; the counts of what was done. Lookups
    are by id range, not by a list of a thousand ids: a range stays cheap whatever plan the
    database picks while its statistics still describe the tables before the job."""
    in_chunk = ProgrammeMember.customer_id > after, ProgrammeMember.customer_id <= last
    existing = set(db.session.scalars(select(ProgrammeMember.customer_id).where(
        ProgrammeMember.programme_id == ctx.programme_id, *in_chunk)))
    todo = [r for r in rows if r.customer_id not in existing]
    counts = {"cases": 0, "written_off": 0, "no_address": 0, "skipped": 0,
              "existing": len(rows) - len(todo)}
    if not todo:
        return counts
    # An open case that already uses this programme's order reference (typed by someone):
    # the unique open case per order would refuse ours, so that customer is left out.
    taken = set(db.session.scalars(select(Case.customer_id).where(
        Case.customer_id > after, Case.customer_id <= last, Case.kind == ctx.kind,
        order_ref_key(Case.order_ref) == ctx.order_ref.lower(),
        Case.status.not_in([str(s) for s in CLOSED_STATUSES]))))
    no_email = set(db.session.scalars(select(Customer.id).where(
        Customer.id > after, Customer.id <= last, Customer.event_id == ctx.event_id,
        func.coalesce(Customer.email, "") == "")))
    now = utcnow()
    payable = [r for r in todo if r.eligible and r.customer_id not in taken]
    counts["skipped"] = sum(1 for r in todo if r.eligible and r.customer_id in taken)
    refs_ = refs.reserve_refs("C", 5, len(payable),
                              failure=_("Could not number the cases; try again."))
    case_rows = [{
        "ref": ref, "event_id": ctx.event_id, "customer_id": r.customer_id, "kind": ctx.kind,
        "order_ref": ctx.order_ref, "amount": r.amount, "currency": r.currency,
        "reason": ctx.reason, "description": "", "status": str(CaseStatus.APPROVED),
        "due_at": ctx.due_at, "approved_by_id": ctx.approved_by_id,
        "approved_amount": r.amount, "source": "programme", "programme_id": ctx.programme_id,
        "created_at": now, "updated_at": now, "lock_version": 1,
    } for ref, r in zip(refs_, payable, strict=True)]
    case_ids: dict[int, int] = {}
    if case_rows:
        # A plain executemany (psycopg pipelines it), then the ids in one indexed query: far
        # faster on PostgreSQL than an INSERT … RETURNING of a thousand rows' values.
        db.session.execute(insert(Case.__table__), case_rows)
        case_ids = {customer_id: case_id for case_id, customer_id in db.session.execute(
            select(Case.id, Case.customer_id).where(
                Case.programme_id == ctx.programme_id, Case.customer_id > after,
                Case.customer_id <= last))}
    member_rows = []
    written_off, no_address = [], []
    for r in todo:
        if r.eligible and r.customer_id in taken:
            continue
        status, reason = MemberStatus.CREATED, None
        if not r.eligible:
            status = MemberStatus.WRITTEN_OFF
            written_off.append(r.customer_id)
        elif r.customer_id in no_email:
            status, reason = MemberStatus.UNCLAIMED, "no_address"
            no_address.append(r.customer_id)
        member_rows.append({
            "programme_id": ctx.programme_id, "customer_id": r.customer_id,
            "case_id": case_ids.get(r.customer_id), "amount": r.amount, "currency": r.currency,
            "status": str(status), "unclaimed_reason": reason, "notified_at": None,
            "accepted_at": None, "failed_payouts": 0, "created_at": now, "updated_at": now})
    if member_rows:
        db.session.execute(insert(ProgrammeMember.__table__), member_rows)
    counts.update(cases=len(case_rows), written_off=len(written_off),
                  no_address=len(no_address))
    # One entry for the chunk, holding every case it created (id, ref, customer id, amount):
    # the case page shows where a case came from (its source and programme).
    audit.record("programme.cases_created", "programme", ctx.programme_id,
                 N_("Programme %(id)s: %(cases)d cases created, %(written_off)d written off, "
                    "%(no_address)d without an address (unclaimed), %(skipped)d left out",
                    id=ctx.programme_id, **{k: counts[k] for k in
                                           ("cases", "written_off", "no_address", "skipped")}),
                 after={"counts": counts, "kind": ctx.kind, "order_ref": ctx.order_ref,
                        "status": str(CaseStatus.APPROVED), "currency": ctx.currency,
                        "cases": [[case_ids[row["customer_id"]], row["ref"],
                                   row["customer_id"], str(row["amount"])]
                                  for row in case_rows],
                        "written_off": written_off, "no_address": no_address})
    return counts


def becomes_member(row: rules.Row) -> bool:
    """Eligible customers, and those written off below the threshold, become members."""
    return row.eligible or row.excluded == "written_off"


def run_generation(programme_id: int, *, checkpoint: Callable[[], None],
                   chunk_size: int = CHUNK_SIZE) -> None:
    """The job's work on a claimed programme (see the module's docstring). ``checkpoint``
    commits a chunk (``uow.commit`` in the job)."""
    programme = db.session.get(Programme, programme_id)
    if programme is None or programme.status != ProgrammeStatus.GENERATING:
        return
    try:
        covered = services.holding_preview(programme)
        if covered is None:
            _stop(programme_id, N_("The entitlements or the computed amounts are no longer "
                                   "the ones legal signed off; nothing more was created. The "
                                   "programme needs a new sign-off."), checkpoint)
            return
        # Members: the eligible, and those written off below the threshold.
        _generate(programme, covered.eligible_count + covered.written_off_count, checkpoint,
                  chunk_size)
    except Exception as exc:
        uow.rollback()
        log.exception("creating the cases of programme %s failed", programme_id)
        _stop(programme_id, N_("Creating the cases failed (%(error)s; logged for the "
                               "administrators). What was created is kept; start again to "
                               "resume.", error=type(exc).__name__), checkpoint)
        raise


def _generate(programme: Programme, total: int, checkpoint: Callable[[], None],
              chunk_size: int) -> None:
    ctx = _Context(programme)
    after = db.session.scalar(select(func.max(ProgrammeMember.customer_id)).where(
        ProgrammeMember.programme_id == ctx.programme_id)) or 0
    done = db.session.scalar(select(func.count(ProgrammeMember.id)).where(
        ProgrammeMember.programme_id == ctx.programme_id)) or 0
    done = min(done, total)
    _set_progress(ctx.programme_id, eligible_count=total, generated_count=done)
    checkpoint()
    while True:
        computed = rules.compute_next(programme, after, chunk_size, ctx.rules)
        if not computed:
            break
        last = computed[-1].customer_id
        counts = _create_chunk(ctx, [r for r in computed if becomes_member(r)], after, last)
        after = last
        done = min(done + counts["cases"] + counts["written_off"] + counts["skipped"], total)
        _set_progress(ctx.programme_id, generated_count=done)
        checkpoint()
        db.session.expire_all()  # flat memory: nothing of the chunk stays in the session
    _finish(ctx.programme_id, total, checkpoint)


def _set_progress(programme_id: int, **values: Any) -> None:
    db.session.execute(update(Programme).where(Programme.id == programme_id).values(**values)
                       .execution_options(synchronize_session=False))


def _finish(programme_id: int, total: int, checkpoint: Callable[[], None]) -> None:
    counts = dict(db.session.execute(
        select(ProgrammeMember.status, func.count(ProgrammeMember.id))
        .where(ProgrammeMember.programme_id == programme_id)
        .group_by(ProgrammeMember.status)).all())
    now = utcnow()
    finished = db.session.execute(
        update(Programme)
        .where(Programme.id == programme_id, Programme.status == ProgrammeStatus.GENERATING)
        .values(status=ProgrammeStatus.RUNNING, finished_at=now, updated_at=now, error=None,
                generated_count=total, lock_version=Programme.lock_version + 1)
        .execution_options(synchronize_session=False)).rowcount == 1
    if finished:
        audit.record("programme.generated", "programme", programme_id,
                     N_("Programme %(id)s: all cases created (%(members)d members, "
                        "%(written_off)d written off); the programme is running",
                        id=programme_id, members=sum(counts.values()),
                        written_off=counts.get(MemberStatus.WRITTEN_OFF, 0)),
                     after={"status": str(ProgrammeStatus.RUNNING), "members": counts})
    checkpoint()
