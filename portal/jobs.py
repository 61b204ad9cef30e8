"""Queueing slow work. The database row is the truth; a job only carries its id.

``enqueue`` uses a deterministic job id, so queueing the same row twice (a retry, the
reconciler) replaces the job rather than running the work twice at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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


Reconciler = Callable[[], int]
RECONCILERS: list[Reconciler] = []


def reconciler(func: Reconciler) -> Reconciler:
    """Register a function that re-queues the rows whose jobs vanished; returns a count."""
    RECONCILERS.append(func)
    return func


def reconcile_all() -> int:
    return sum(func() for func in RECONCILERS)
