"""RQ job applying a bank's result file (it takes the result's id and calls the service)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal import jobs
from portal.extensions import rq
from portal.models import utcnow
from portal.payouts import results
from portal.payouts.models import PayoutResult

RESULT_TIMEOUT_SECONDS = 900
APPLY_CLAIM = jobs.Claim(PayoutResult, waiting=(results.ResultStatus.UPLOADED,),
                         running=results.ResultStatus.APPLYING,
                         lease=timedelta(seconds=RESULT_TIMEOUT_SECONDS), max_attempts=3)


@rq.job
@jobs.unit_of_work
def apply_result_job(result_id: int) -> None:
    with jobs.claimed(APPLY_CLAIM, result_id) as mine:
        if mine:
            # One transaction: the file is applied whole (its lines each with their outcome)
            # or, when the worker dies, not at all and taken over after the lease.
            results.apply_result(result_id)


def job_id(result_id: int) -> str:
    return f"payout-result-{result_id}"


def queue_result(result_id: int) -> bool:
    return jobs.enqueue(apply_result_job, result_id, job_id=job_id(result_id),
                        timeout=RESULT_TIMEOUT_SECONDS)


def requeue_lost_results(min_age: timedelta) -> int:
    stmt = select(PayoutResult.id).where(PayoutResult.status.in_(results.BUSY),
                                         PayoutResult.created_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, job_id, queue_result)


