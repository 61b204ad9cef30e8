"""RQ jobs of the entitlements import (check, then apply). Jobs take ids and call services."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal import imports, jobs, uow
from portal.customers.models import BUSY_IMPORT_STATUSES, ImportStatus
from portal.extensions import db, rq
from portal.models import utcnow
from portal.programmes import entitlements
from portal.programmes.models import EntitlementImport

IMPORT_TIMEOUT_SECONDS = 900
_LEASE = timedelta(seconds=IMPORT_TIMEOUT_SECONDS)
VALIDATE_CLAIM = jobs.Claim(EntitlementImport, waiting=(ImportStatus.UPLOADED,),
                            running=ImportStatus.VALIDATING, lease=_LEASE,
                            error_column="message")
# A confirmed file is "importing" before and while it is applied: its claim tells them apart.
IMPORT_CLAIM = jobs.Claim(EntitlementImport, waiting=(), running=ImportStatus.IMPORTING,
                          lease=_LEASE, error_column="message")


@rq.job
@jobs.unit_of_work
def validate_entitlements_job(batch_id: int) -> None:
    with jobs.claimed(VALIDATE_CLAIM, batch_id) as mine:
        if mine:
            # Progress committed as it goes, so the page can show how far the check is.
            with imports.staged_keys_dropped_on_error(entitlements.STAGED, batch_id):
                entitlements.validate_import(batch_id, checkpoint=uow.commit)


@rq.job
@jobs.unit_of_work
def apply_entitlements_job(batch_id: int) -> None:
    with jobs.claimed(IMPORT_CLAIM, batch_id) as mine:
        if mine:
            entitlements.run_import(batch_id)


def job_id(batch_id: int) -> str:
    return f"entitlement-import-{batch_id}"


def queue_validation(batch_id: int) -> bool:
    return jobs.enqueue(validate_entitlements_job, batch_id, job_id=job_id(batch_id),
                        timeout=IMPORT_TIMEOUT_SECONDS)


def queue_import(batch_id: int) -> bool:
    return jobs.enqueue(apply_entitlements_job, batch_id, job_id=job_id(batch_id),
                        timeout=IMPORT_TIMEOUT_SECONDS)


def _queue_for(batch_id: int) -> bool:
    if db.session.get(EntitlementImport, batch_id).status == ImportStatus.IMPORTING:
        return queue_import(batch_id)
    return queue_validation(batch_id)


def requeue_lost_imports(min_age: timedelta) -> int:
    """Files whose job vanished from Redis are queued again (``jobs.add_reconcilers``)."""
    stmt = select(EntitlementImport.id).where(
        EntitlementImport.status.in_(BUSY_IMPORT_STATUSES),
        EntitlementImport.created_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, job_id, _queue_for)
