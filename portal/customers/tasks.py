"""RQ jobs of the customer import. Jobs take ids and call services."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal import imports, jobs, uow
from portal.customers import services
from portal.customers.models import BUSY_IMPORT_STATUSES, ImportBatch, ImportStatus
from portal.extensions import rq
from portal.models import utcnow

IMPORT_TIMEOUT_SECONDS = 900
_LEASE = timedelta(seconds=IMPORT_TIMEOUT_SECONDS)
VALIDATE_CLAIM = jobs.Claim(ImportBatch, waiting=(ImportStatus.UPLOADED,),
                            running=ImportStatus.VALIDATING, lease=_LEASE,
                            error_column="message")
# A confirmed batch is "importing" before and while it is imported: its claim tells them apart.
IMPORT_CLAIM = jobs.Claim(ImportBatch, waiting=(), running=ImportStatus.IMPORTING, lease=_LEASE,
                          error_column="message")


@rq.job
@jobs.unit_of_work
def validate_import_job(batch_id: int) -> None:
    with jobs.claimed(VALIDATE_CLAIM, batch_id) as mine:
        if mine:
            # Progress committed as it goes, so the page can show how far the check is.
            with imports.staged_keys_dropped_on_error(services.STAGED, batch_id):
                services.validate_import(batch_id, checkpoint=uow.commit)


@rq.job
@jobs.unit_of_work
def run_import_job(batch_id: int) -> None:
    with jobs.claimed(IMPORT_CLAIM, batch_id) as mine:
        if mine:
            services.run_import(batch_id)


def job_id(batch_id: int) -> str:
    return f"customer-import-{batch_id}"


def queue_validation(batch_id: int) -> bool:
    return jobs.enqueue(validate_import_job, batch_id, job_id=job_id(batch_id),
                        timeout=IMPORT_TIMEOUT_SECONDS)


def queue_import(batch_id: int) -> bool:
    return jobs.enqueue(run_import_job, batch_id, job_id=job_id(batch_id),
                        timeout=IMPORT_TIMEOUT_SECONDS)


def _queue_for(batch_id: int) -> bool:
    from portal.extensions import db

    status = db.session.get(ImportBatch, batch_id).status
    if status == ImportStatus.IMPORTING:
        return queue_import(batch_id)
    return queue_validation(batch_id)


def requeue_lost_imports(min_age: timedelta) -> int:
    stmt = select(ImportBatch.id).where(
        ImportBatch.status.in_(BUSY_IMPORT_STATUSES),
        ImportBatch.created_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, job_id, _queue_for)
