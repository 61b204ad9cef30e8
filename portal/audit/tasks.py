"""RQ jobs of the audit trail. Jobs take ids and call services."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal import jobs
from portal.audit import services
from portal.audit.models import AuditVerification
from portal.extensions import db, rq
from portal.models import utcnow


@rq.job
def verify_chain_job(verification_id: int) -> None:
    services.run_verification(verification_id)


def job_id(verification_id: int) -> str:
    return f"audit-verify-{verification_id}"


def queue_verification(verification_id: int) -> bool:
    return jobs.enqueue(verify_chain_job, verification_id, job_id=job_id(verification_id))


@jobs.reconciler
def requeue_lost_verifications() -> int:
    """Queue again the verifications still waiting whose job Redis no longer has."""
    cutoff = utcnow() - timedelta(seconds=30)
    stmt = select(AuditVerification.id).where(
        AuditVerification.status.in_(["queued", "running"]),
        AuditVerification.requested_at < cutoff,
    )
    count = 0
    for verification_id in db.session.scalars(stmt):
        if not jobs.job_is_known(job_id(verification_id)) and queue_verification(verification_id):
            count += 1
    return count
