"""Read the queues through RQ's own registries, and queue a failed job again.

Jobs carry row ids (portal/jobs.py), so their arguments are shown only when every one is a
number; anything else is hidden, in case a job was ever given personal data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.queue import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

from portal import jobs
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.extensions import rq
from portal.i18n import N_

# Failed jobs listed per queue (newest first); the count says how many there are in all.
FAILED_SHOWN = 50
ERROR_CHARS = 300


@dataclass(frozen=True)
class FailedJob:
    id: str
    function: str
    arguments: str | None  # None: hidden (not only ids)
    failed_at: datetime | None
    error: str


@dataclass
class QueueState:
    name: str
    queued: int
    started: int
    failed: int
    workers: int  # alive: beat within a minute, or busy (``portal.jobs.live_workers``)
    failed_jobs: list[FailedJob] = field(default_factory=list)


def queue_names() -> list[str]:
    return list(current_app.config["RQ_QUEUES"])


def _queue(name: str) -> Queue:
    if name not in queue_names():
        raise LookupError(name)
    return rq.get_queue(name)


def _arguments(job: Job) -> str | None:
    try:
        args, kwargs = job.args, job.kwargs
    except Exception:  # arguments that no longer unpickle
        return None
    values = [*args, *kwargs.values()]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    return ", ".join([*(str(a) for a in args), *(f"{k}={v}" for k, v in kwargs.items())])


def last_line(exc_info: str | None) -> str:
    """The exception's own line (the traceback's last non-empty one), cut to a readable
    length."""
    lines = [line.strip() for line in (exc_info or "").splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _exc_string(job: Job) -> str | None:
    result = job.latest_result()
    return result.exc_string if result is not None else None


def _failed_job(job: Job) -> FailedJob:
    return FailedJob(id=job.id, function=(job.func_name or "?").rsplit(".", 1)[-1]
                     if job.func_name else "?",
                     arguments=_arguments(job), failed_at=job.ended_at,
                     error=last_line(_exc_string(job)))


def queues() -> list[QueueState]:
    """Every configured queue with its depth, running jobs, live workers and newest failed
    jobs."""
    found = []
    alive = jobs.live_workers(rq.queue.connection)
    for name in queue_names():
        queue = _queue(name)
        failed = FailedJobRegistry(queue=queue)
        ids = failed.get_job_ids(0, -1)
        newest = list(reversed(ids))[:FAILED_SHOWN]
        fetched = [job for job in Job.fetch_many(newest, connection=queue.connection,
                                              serializer=queue.serializer) if job is not None]
        found.append(QueueState(name=name, queued=queue.count,
                                started=StartedJobRegistry(queue=queue).count,
                                failed=len(ids), workers=alive.get(name, 0),
                                failed_jobs=[_failed_job(j) for j in fetched]))
    return found


def retry(queue_name: str, job_id: str) -> None:
    """Queue a failed job again (RQ's ``FailedJobRegistry.requeue``), audited. The job claims
    its row before any work (portal/jobs.py), so a retry of finished work does nothing."""
    from flask_babel import gettext as _

    try:
        queue = _queue(queue_name)
        FailedJobRegistry(queue=queue).requeue(job_id)
    except (LookupError, InvalidJobOperation, NoSuchJobError) as exc:
        raise RuleViolation(_("Job %(job)s is not among the failed jobs of queue %(queue)s "
                              "(retried already, or removed).",
                              job=job_id[:64], queue=queue_name[:32])) from exc
    audit.record("job.retry", "job", job_id[:64],
                 N_("Failed job %(job)s queued again on queue %(queue)s",
                    job=job_id[:64], queue=queue_name))
