"""Retention: the policy (how long after an event closed its customers' personal data is
kept), the events past it, and the runs that erase them.

Humans stay in control of retention: nothing is erased without an admin confirming a dry-run
report that names the events. The daily job only prepares such a report; a confirmed run
re-checks, when it runs, that each event is still closed and past retention under the current
policy, and skips it otherwise. The erasure itself is in ``erasure.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from portal import jobs
from portal.accounts import User
from portal.audit import services as audit
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.events.models import Event, EventStatus
from portal.extensions import db
from portal.i18n import N_
from portal.lifecycle import erasure
from portal.lifecycle.models import (
    DEFAULT_RETENTION_DAYS,
    RetentionPolicy,
    RetentionRun,
    RetentionRunStatus,
)
from portal.models import utcnow
from portal.subscriptions import services as subscriptions

ERASE_BATCH = 200  # customers erased per transaction in a retention run
# What erasure changes, for the dry-run report (labels in the templates).
ERASED_FIELDS = ("customer_identity", "customer_contact", "mail_logs", "case_replies",
                 "case_texts", "signoff_snapshots", "files")


# --------------------------------------------------------------------------- retention policy


def policy() -> RetentionPolicy:
    """The single settings row; the default, not yet stored, until it is first changed."""
    row = db.session.get(RetentionPolicy, 1)
    if row is None:
        row = RetentionPolicy(id=1, days=DEFAULT_RETENTION_DAYS, updated_at=utcnow())
    return row


def set_retention_days(days: int, *, actor: User) -> bool:
    if not 1 <= days <= 36500:
        raise RuleViolation(_("Between 1 and 36500 days."), field="days")
    row = policy()
    if row.days == days:
        return False
    before = row.days
    row.days, row.updated_at, row.updated_by_id = days, utcnow(), actor.id
    db.session.add(row)
    audit.record("settings.retention", audit.SETTING, "retention",
                 N_("Retention set (days after an event closed: %(days)d)", days=days),
                 before={"days": before}, after={"days": days}, actor=actor)
    return True


def retention_due_at(event: Event, days: int | None = None) -> datetime | None:
    if not event.closed:
        return None
    return event.closed_at + timedelta(days=policy().days if days is None else days)


def _past_retention(event: Event, days: int, now: datetime) -> bool:
    due = retention_due_at(event, days)
    return due is not None and due <= now


def _live_customers(event_id: int) -> Any:
    return select(func.count(Customer.id)).where(Customer.event_id == event_id,
                                                 Customer.erased_at.is_(None))


@dataclass
class EventRetention:
    days: int
    due_at: datetime | None
    customers: int
    erased: int

    @property
    def due(self) -> bool:
        return self.due_at is not None and self.due_at <= utcnow()


def event_retention(event: Event) -> EventRetention:
    days = policy().days
    total = db.session.scalar(select(func.count(Customer.id)).where(
        Customer.event_id == event.id)) or 0
    live = db.session.scalar(_live_customers(event.id)) or 0
    return EventRetention(days, retention_due_at(event, days), live, total - live)


# ------------------------------------------------------------------------- dry run and runs


def due_events(days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Closed events past retention that still have customers with personal data."""
    now = now or utcnow()
    stmt = (select(Event).where(Event.status == EventStatus.CLOSED, Event.closed_at.is_not(None),
                                Event.closed_at <= now - timedelta(days=days))
            .order_by(Event.closed_at, Event.id))
    found = []
    for event in db.session.scalars(stmt):
        live = db.session.scalar(_live_customers(event.id)) or 0
        if live:
            found.append({"event_id": event.id, "title": event.title,
                          "closed_at": event.closed_at.isoformat(),
                          "due_at": (event.closed_at + timedelta(days=days)).isoformat(),
                          "customers": live})
    return found


def dry_run(*, actor: User | None) -> RetentionRun:
    """Write the report of what an erasure would do now; nothing is erased."""
    days = policy().days
    run = RetentionRun(days=days, status=RetentionRunStatus.PROPOSED, created_at=utcnow(),
                       created_by_id=actor.id if actor else None,
                       report={"events": due_events(days), "fields": list(ERASED_FIELDS)})
    db.session.add(run)
    db.session.flush()
    audit.record("retention.dry_run", "retention_run", run.id,
                 N_("Retention dry run: events: %(events)d, customers: %(customers)d, retention "
                    "(days): %(days)d", events=len(run.report["events"]),
                    customers=run.customer_total, days=days),
                 after={"events": [e["event_id"] for e in run.report["events"]],
                        "customers": run.customer_total, "days": days}, actor=actor)
    return run


def prepare_daily_report() -> RetentionRun | None:
    """The daily job's part: a dry-run report when events are due and none awaits review."""
    if db.session.scalar(select(RetentionRun.id).where(
            RetentionRun.status.in_([RetentionRunStatus.PROPOSED, RetentionRunStatus.CONFIRMED,
                                     RetentionRunStatus.RUNNING])).limit(1)):
        return None
    if not due_events(policy().days):
        return None
    return dry_run(actor=None)


def awaiting_confirmation(_user: User, run: RetentionRun) -> bool:
    """A dry run an admin may still confirm or cancel."""
    return run.status == RetentionRunStatus.PROPOSED


def confirm_run(run: RetentionRun, *, actor: User) -> None:
    if not awaiting_confirmation(actor, run):
        raise RuleViolation(_("Only a dry run awaiting confirmation can be confirmed."))
    if not run.report.get("events"):
        raise RuleViolation(_("This dry run found nothing to erase."))
    # Only one of two admins confirming at once wins (one audit entry, one job).
    confirmed = db.session.execute(
        update(RetentionRun).where(RetentionRun.id == run.id,
                                   RetentionRun.status == RetentionRunStatus.PROPOSED)
        .values(status=RetentionRunStatus.CONFIRMED, confirmed_at=utcnow(),
                confirmed_by_id=actor.id)
        .execution_options(synchronize_session=False)).rowcount
    if confirmed != 1:
        raise RuleViolation(_("Only a dry run awaiting confirmation can be confirmed."))
    db.session.refresh(run)
    audit.record("retention.confirm", "retention_run", run.id,
                 N_("Retention run %(run)d confirmed: customers to erase: %(customers)d, "
                    "events: %(events)d", run=run.id, customers=run.customer_total,
                    events=len(run.report["events"])),
                 after={"events": [e["event_id"] for e in run.report["events"]]}, actor=actor)


def cancel_run(run: RetentionRun, *, actor: User) -> None:
    if not awaiting_confirmation(actor, run):
        raise RuleViolation(_("Only a dry run awaiting confirmation can be cancelled."))
    run.status, run.finished_at = RetentionRunStatus.CANCELLED, utcnow()
    audit.record("retention.cancel", "retention_run", run.id,
                 N_("Retention run %(run)d cancelled", run=run.id), actor=actor)


def run_retention(run_id: int, *, batch_done: Callable[[], None] | None = None) -> None:
    """Erase the customers of a confirmed run's events; safe to run twice (erased customers
    are skipped, a finished run is left alone). ``batch_done`` is called after each batch of
    customers (the job commits there, so a long run keeps what it erased)."""
    run = db.session.get(RetentionRun, run_id)
    if run is None or run.status not in (RetentionRunStatus.CONFIRMED, RetentionRunStatus.RUNNING):
        return
    run.status = RetentionRunStatus.RUNNING
    actor = db.session.get(User, run.confirmed_by_id) if run.confirmed_by_id else None
    days, now = policy().days, utcnow()
    with jobs.failure_recorded(RetentionRun, run_id):
        erased, skipped = run.erased_count, []
        for item in run.report.get("events", []):
            event = db.session.get(Event, item["event_id"])
            if event is None or not _past_retention(event, days, now):
                skipped.append(item["event_id"])
                continue
            last_id = 0
            while ids := db.session.scalars(
                    select(Customer.id).where(Customer.event_id == event.id,
                                              Customer.erased_at.is_(None),
                                              Customer.id > last_id)
                    .order_by(Customer.id).limit(ERASE_BATCH)).all():
                last_id = ids[-1]
                # Those another erasure got to first are not in ``done``.
                done, files = erasure.erase_customers(list(ids),
                                                      reason=f"retention run {run_id}",
                                                      actor=actor)
                erased += len(done)
                db.session.get(RetentionRun, run_id).erased_count = erased
                erasure.unlink_after_commit(files)
                if batch_done:
                    batch_done()
            subscriptions.drop_for_event(event.id)  # its public subscribers too
        run = db.session.get(RetentionRun, run_id)
        run.status, run.finished_at = RetentionRunStatus.DONE, utcnow()
        audit.record("retention.done", "retention_run", run.id,
                     N_("Retention run %(run)d finished: customers erased: %(erased)d",
                        run=run.id, erased=erased),

                     after={"erased": erased, "skipped_events": skipped}, actor=actor)

