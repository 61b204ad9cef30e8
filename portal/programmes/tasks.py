"""RQ jobs of the programmes. Jobs take ids and call services."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal import jobs, uow
from portal.extensions import rq
from portal.models import utcnow
from portal.programmes import generation
from portal.programmes.models import Programme, ProgrammeStatus

GENERATION_TIMEOUT_SECONDS = 1800
# A programme is "generating" before and while its job runs: the claim tells them apart. A
# worker that dies mid-way is replaced after the lease (the reconciler queues the job again,
# which resumes); after ``max_attempts`` claims it stops, approved again, with the reason.
GENERATE_CLAIM = jobs.Claim(Programme, waiting=(), running=ProgrammeStatus.GENERATING,
                            lease=timedelta(seconds=GENERATION_TIMEOUT_SECONDS),
                            max_attempts=3, failed=ProgrammeStatus.APPROVED)


@rq.job
@jobs.unit_of_work
def generate_cases_job(programme_id: int) -> None:
    with jobs.claimed(GENERATE_CLAIM, programme_id) as mine:
        if mine:
            # Each chunk is committed with the progress, so the page shows how far it got and
            # a killed job keeps what it did (``generation`` module docstring).
            generation.run_generation(programme_id, checkpoint=uow.commit)


def job_id(programme_id: int) -> str:
    return f"programme-generation-{programme_id}"


def queue_generation(programme_id: int) -> bool:
    return jobs.enqueue(generate_cases_job, programme_id, job_id=job_id(programme_id),
                        timeout=GENERATION_TIMEOUT_SECONDS)


def requeue_lost_generations(min_age: timedelta) -> int:
    stmt = select(Programme.id).where(Programme.status == ProgrammeStatus.GENERATING,
                                      Programme.updated_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, job_id, queue_generation)
