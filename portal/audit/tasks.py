"""RQ jobs of the audit trail. Jobs take ids and call services."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from portal import jobs, uow
from portal.audit import checkpoints, services
from portal.audit.models import AuditVerification, VerificationStatus
from portal.extensions import rq
from portal.models import utcnow

log = logging.getLogger(__name__)
# How often the chain's head is signed: a tail removed after the last checkpoint is the one
# thing a check cannot see.
CHECKPOINT_INTERVAL_SECONDS = 600
VERIFY_TIMEOUT_SECONDS = 600
VERIFY_CLAIM = jobs.Claim(AuditVerification, waiting=(VerificationStatus.QUEUED,),
                          running=VerificationStatus.RUNNING,
                          lease=timedelta(seconds=VERIFY_TIMEOUT_SECONDS), error_column="message")


@rq.job
@jobs.unit_of_work
def verify_chain_job(verification_id: int) -> None:
    with jobs.claimed(VERIFY_CLAIM, verification_id) as mine:
        if mine:
            # Progress committed as it goes, so the page can show how far the check is.
            services.run_verification(verification_id, checkpoint=uow.commit)


def job_id(verification_id: int) -> str:
    return f"audit-verify-{verification_id}"


def queue_verification(verification_id: int) -> bool:
    return jobs.enqueue(verify_chain_job, verification_id, job_id=job_id(verification_id),
                        timeout=VERIFY_TIMEOUT_SECONDS)


def requeue_lost_verifications(min_age: timedelta) -> int:
    """Queue again the verifications still waiting whose job Redis no longer has."""
    cutoff = utcnow() - min_age
    stmt = select(AuditVerification.id).where(
        AuditVerification.status.in_([VerificationStatus.QUEUED,
                                      VerificationStatus.RUNNING]),
        AuditVerification.requested_at < cutoff,
    )
    return jobs.requeue_lost(stmt, job_id, queue_verification)


@rq.job
@jobs.unit_of_work
def checkpoint_job() -> bool:
    """Sign the chain's current head (scheduled; nothing is written when nothing changed)."""
    try:
        written = checkpoints.write_checkpoint()
    except checkpoints.ChainDoesNotExtend:
        uow.rollback()  # a refused checkpoint writes nothing
        log.exception("audit checkpoint refused")
        return False
    return written is not None
