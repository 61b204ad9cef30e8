"""Queueing slow work. The database row is the truth; a job only carries its id.

``enqueue`` uses a deterministic job id, so queueing the same row twice (a retry, the
reconciler) replaces the job rather than running the work twice at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from redis.exceptions import RedisError

from portal.extensions import rq

log = logging.getLogger(__name__)


def enqueue(job: Any, *args: Any, job_id: str, timeout: int = 600) -> bool:
    """Queue ``job`` (a Flask-RQ job wrapper); False when Redis cannot be reached."""
    try:
        job.enqueue(*args, job_id=job_id, job_timeout=timeout)
    except (RedisError, OSError) as exc:
        log.warning("could not queue %s: %s", job_id, exc)
        return False
    return True


def job_is_known(job_id: str) -> bool:
    """Whether Redis still holds a job with this id (queued, running or scheduled)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    try:
        status = Job.fetch(job_id, connection=rq.queue.connection).get_status(refresh=True)
    except NoSuchJobError:
        return False
    return status in {
        JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED
    }


# A reconciler re-queues rows older than the given age whose jobs vanished; returns a count.
Reconciler = Callable[[timedelta], int]
RECONCILERS: list[Reconciler] = []
# Younger rows may simply not have reached the queue yet.
DEFAULT_MIN_AGE = timedelta(seconds=30)


def reconciler(func: Reconciler) -> Reconciler:
    RECONCILERS.append(func)
    return func


def reconcile_all(min_age: timedelta = DEFAULT_MIN_AGE) -> int:
    return sum(func(min_age) for func in RECONCILERS)


def requeue_lost(
    stmt: Any, job_id_for: Callable[[int], str], queue: Callable[[int], bool]
) -> int:
    """Queue again each row id from ``stmt`` (rows still waiting) whose job Redis lost."""
    from portal.extensions import db

    count = 0
    for row_id in db.session.scalars(stmt):
        if not job_is_known(job_id_for(row_id)) and queue(row_id):
            count += 1
    return count
