"""Jobs can be queued twice (rq/rq#1701) and re-queued for a dead worker: each claims its row
with a conditional update first, so the work, its counts and its audit entry happen once; a
row left by a dead worker is taken over once its lease is over; a PDF that kills its worker
every time fails with the reason after a few attempts instead of "rendering…" forever."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import func, select, update

from portal import documents, jobs
from portal.accounts import Role
from portal.audit import services as audit
from portal.audit import tasks as audit_tasks
from portal.audit.models import AuditEntry, AuditVerification
from portal.customers import services as customers
from portal.customers import tasks as customer_tasks
from portal.customers.models import Customer, ImportBatch
from portal.extensions import db
from portal.lifecycle import erasure, export, retention
from portal.lifecycle import tasks as lifecycle_tasks
from portal.lifecycle.models import ArchiveStatus, EventArchive, RetentionRun, RetentionRunStatus
from portal.models import utcnow
from portal.notices import pdf
from portal.notices import services as notice_services
from portal.notices.models import NoticePdf
from tests.notice_helpers import make_event, make_notice

CSV = b"external_ref,name,company,email,phone,locale,tags\nK1,Wang Fang,,w@example.com,,en,\n"


def _closed_event_with_customers(users, count: int):
    event = make_event(title="Old")
    for i in range(count):
        customers.create_customer(event, {"external_ref": f"K-{i}", "name": f"Person {i}",
                                          "email": f"p{i}@example.com", "locale": "en"},
                                  actor=users[Role.AGENT])
    event.status, event.closed_at = "closed", utcnow() - timedelta(days=400)
    db.session.commit()
    return event


def _confirmed_run(users, count: int = 3) -> int:
    _closed_event_with_customers(users, count)
    run = retention.dry_run(actor=users[Role.ADMIN])
    retention.confirm_run(run, actor=users[Role.ADMIN])
    db.session.commit()
    return run.id


def _entries(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_a_retention_run_started_twice_at_once_erases_and_audits_once(app, users,
                                                                       monkeypatch) -> None:
    run_id = _confirmed_run(users, count=3)
    # The first erasure, by whichever copy gets there, waits until the other copy is done:
    # without a claim both copies work on the run, with one the second does nothing.
    real_erase, first = erasure.erase_customers, threading.Lock()
    other_copy_done, start = threading.Event(), threading.Barrier(2)

    def erase_after_the_other_copy(customer_ids, **kw):
        if first.acquire(blocking=False):
            other_copy_done.wait(timeout=10)
        return real_erase(customer_ids, **kw)

    monkeypatch.setattr(erasure, "erase_customers", erase_after_the_other_copy)
    errors: list[BaseException] = []

    def copy_of_the_job() -> None:
        with app.app_context():
            try:
                start.wait(timeout=10)
                lifecycle_tasks.run_retention_job(run_id)
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)
            finally:
                db.session.remove()
                other_copy_done.set()

    threads = [threading.Thread(target=copy_of_the_job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    db.session.expire_all()
    run = db.session.get(RetentionRun, run_id)
    done = _entries("retention.done")
    assert run.status == RetentionRunStatus.DONE and run.erased_count == 3
    assert len(done) == 1 and done[0].after["erased"] == 3
    assert len(_entries("customer.erase")) == 3
    assert db.session.scalar(select(func.count(Customer.id))
                             .where(Customer.erased_at.is_(None))) == 0
    assert audit.verify_chain().ok


def _verification(app, users) -> tuple[type, int, Callable[[int], object], timedelta]:
    row = audit.request_verification(users[Role.ADMIN])
    db.session.commit()
    return AuditVerification, row.id, audit_tasks.verify_chain_job, audit_tasks.VERIFY_CLAIM


def _validation(app, users):
    batch = customers.start_import(make_event(), io.BytesIO(CSV), "customers.csv",
                                   actor=users[Role.AGENT])
    return ImportBatch, batch.id, customer_tasks.validate_import_job, \
        customer_tasks.VALIDATE_CLAIM


def _import(app, users):
    batch = customers.start_import(make_event(), io.BytesIO(CSV), "customers.csv",
                                   actor=users[Role.AGENT])
    customer_tasks.validate_import_job(batch.id)
    customers.confirm_import(db.session.get(ImportBatch, batch.id), actor=users[Role.AGENT])
    return ImportBatch, batch.id, customer_tasks.run_import_job, customer_tasks.IMPORT_CLAIM


def _archive(app, users):
    event = _closed_event_with_customers(users, 1)
    row = export.request_export(event, actor=users[Role.ADMIN])
    return EventArchive, row.id, lifecycle_tasks.build_archive_job, lifecycle_tasks.ARCHIVE_CLAIM


def _retention(app, users):
    return RetentionRun, _confirmed_run(users, 1), lifecycle_tasks.run_retention_job, \
        lifecycle_tasks.RETENTION_CLAIM


def _notice_pdf(app, users):
    notice = make_notice(users)
    row = notice_services.request_pdf(notice.latest_version, "draft", "zh_CN")
    db.session.commit()
    return (NoticePdf, row.id, partial(documents.render_document_job, pdf.PIPELINE.name),
            pdf.PIPELINE.claim)


ROWS = {"audit verification": _verification, "import validation": _validation,
        "import": _import, "archive": _archive, "retention run": _retention,
        "notice pdf": _notice_pdf}
FINISHED = {"ok", "validated", "imported", ArchiveStatus.DONE}


@pytest.mark.parametrize("kind", list(ROWS))
def test_a_second_copy_of_a_job_leaves_a_claimed_row_alone_until_its_lease_ends(
        app, users, kind) -> None:
    model, row_id, job, claim = ROWS[kind](app, users)
    claims_before = db.session.get(model, row_id).attempts
    # Another worker claimed the row a moment ago and is working on it.
    db.session.execute(update(model).where(model.id == row_id)
                       .values(status=claim.running, claimed_at=utcnow()))
    db.session.commit()
    job(row_id)
    db.session.expire_all()
    row = db.session.get(model, row_id)
    assert row.status == claim.running, f"{kind}: a second copy did the work"
    # That worker died: once its lease is over, the next copy takes the row over and ends it.
    db.session.execute(update(model).where(model.id == row_id)
                       .values(claimed_at=utcnow() - claim.lease - timedelta(seconds=1)))
    db.session.commit()
    job(row_id)
    db.session.expire_all()
    row = db.session.get(model, row_id)
    assert row.status in FINISHED, f"{kind}: {row.status}"
    assert row.claimed_at is None and row.attempts == claims_before + 1


def test_claims_are_conditional_updates_only_one_of_two_wins(app, users) -> None:
    _model, row_id, _job, claim = _notice_pdf(app, users)
    first = jobs.take(claim, row_id)
    assert first is not None and jobs.take(claim, row_id) is None
    jobs.release(claim, row_id, first)
    assert jobs.take(claim, row_id) is not None


class WorkerDied(BaseException):
    """What the job sees when its worker process is killed mid-render (no ``except`` runs)."""


def test_a_pdf_that_kills_its_worker_fails_with_the_reason_after_the_last_attempt(
        app, users, client, auth, monkeypatch) -> None:
    _model, row_id, job, claim = _notice_pdf(app, users)

    def render_that_kills_the_worker(*_args, **_kw):
        raise WorkerDied

    monkeypatch.setattr(pdf, "render_pdf", render_that_kills_the_worker)
    for _attempt in range(documents.MAX_ATTEMPTS):
        with pytest.raises(WorkerDied):
            job(row_id)
        db.session.rollback()
        assert db.session.get(NoticePdf, row_id).status == "running"
        job(row_id)  # queued again at once: the dead worker's lease still holds
        # The reconciler queues it again once the lease is over.
        db.session.execute(update(NoticePdf).where(NoticePdf.id == row_id)
                           .values(claimed_at=utcnow() - claim.lease - timedelta(seconds=1)))
        db.session.commit()
    assert job(row_id) is None
    row = db.session.get(NoticePdf, row_id)
    assert row.status == "failed" and f"{documents.MAX_ATTEMPTS} attempts" in row.error
    assert row.attempts == documents.MAX_ATTEMPTS
    assert pdf.PIPELINE.requeue_lost(timedelta(0)) == 0  # nothing left to retry
    auth.login(Role.AGENT)
    status = client.get(f"/staff/notices/pdfs/{row_id}", headers={"HX-Request": "true"}).text
    assert "every 1s" not in status and "attempts" in status


def test_an_error_in_the_renderer_fails_the_pdf_with_its_reason_at_once(app, users,
                                                                         monkeypatch) -> None:
    _model, row_id, job, _claim = _notice_pdf(app, users)

    def deep(*_args, **_kw):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(pdf, "render_pdf", deep)
    with pytest.raises(RecursionError):
        job(row_id)
    db.session.rollback()
    row = db.session.get(NoticePdf, row_id)
    assert row.status == "failed" and "recursion" in row.error and row.claimed_at is None
    assert job(row_id) is None and db.session.get(NoticePdf, row_id).attempts == 1


def test_a_published_notice_whose_pdf_failed_says_so_instead_of_asking_to_wait(
        app, users, client) -> None:
    from tests.notice_helpers import publish

    notice = make_notice(users)
    publish(notice, users)
    row = notice_services.request_pdf(notice.published_version, "signed", "en")
    row.status, row.error = "failed", "Gave up after 3 attempts"
    db.session.commit()
    response = client.get(f"/notices/{notice.slug}.pdf", headers={"Accept-Language": "en"})
    assert response.status_code == 503 and "Retry-After" not in response.headers
    assert "could not be made" in response.text
