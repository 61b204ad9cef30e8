"""Queueing slow work. The database row is the truth; a job only carries its id.

``enqueue`` uses a deterministic job id, but that does not stop the same work from running
twice at once: RQ queues a second job under an id that is already queued or running
(rq/rq#1701), and the reconciler queues again a job whose worker died. So every job first
claims its row (``claimed``): one conditional UPDATE, committed before any work, moves the row
to its running status and stamps ``claimed_at``; a second copy finds it taken and does
nothing. A claim is a lease: a row still running when its lease (the job's timeout) is over
was left by a dead worker, and the next job the reconciler queues takes it over. ``attempts``
counts the claims, so work that kills its worker every time (a renderer crash) fails with its
reason after ``max_attempts`` instead of being retried forever.

A job is one unit of work (``unit_of_work``): committed when it returns, rolled back when it
raises. The claims are committed at once, apart from the job's work (documented exceptions,
like the per-message and per-batch commits of the long jobs, each commented where it is).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import flash, g, has_request_context
from redis.exceptions import RedisError
from rq import cron
from sqlalchemy import Integer, and_, or_, update
from sqlalchemy.orm import Mapped, mapped_column

from portal import metrics, uow
from portal.extensions import db, rq
from portal.models import UTCDateTime, utcnow

log = logging.getLogger(__name__)

# The workers' time to live in RQ's registry (``flask rq worker --worker-ttl 60``; the
# mailings worker sets it): an idle worker then beats every 45 s, so ``/readyz`` (a beat
# within the last minute) sees it. RQ's default, 420, beats every 405 s.
WORKER_TTL = 60
# An idle RQ worker beats each time its wait for a job ends, every ``WORKER_TTL - 15`` seconds
# (45 s). One that has not beaten for longer than this is presumed stuck or gone, unless it is
# busy with a job: it beat when it took the job, and RQ drops it from its registry when the
# job's timeout has passed.
HEARTBEAT_WITHIN = timedelta(seconds=60)

P = ParamSpec("P")
R = TypeVar("R")


def unit_of_work(job: Callable[P, R]) -> Callable[P, R]:
    """A job's boundary (under ``@rq.job``): its work is committed when it returns, rolled
    back when it raises."""

    @wraps(job)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        started, ok = time.perf_counter(), False
        try:
            try:
                result = job(*args, **kwargs)
            except BaseException:
                uow.rollback()
                raise
            uow.commit()  # the job's boundary
            ok = True
        finally:
            metrics.observe_job(_queue_name(), ok, time.perf_counter() - started)
        return result

    return run


def _queue_name() -> str:
    """The queue of the RQ job running now ("inline" when called outside a worker)."""
    from rq import get_current_job

    job = get_current_job()
    return job.origin if job is not None else "inline"


@contextmanager
def failure_recorded(model: Any, row_id: int, *, error_column: str = "error",
                     reason: Callable[[Exception], str] | None = None) -> Iterator[None]:
    """Around a job's work on its row: an error rolls the work back, sets the row to "failed"
    with the reason (the error's text, or ``reason(error)``; committed, so it outlives the
    job) and is raised again."""
    try:
        yield
    except Exception as exc:
        uow.rollback()
        log.exception("job on %s %s failed", model.__name__, row_id)
        record_failure(model, row_id, reason(exc) if reason else str(exc)[:500],
                       error_column=error_column)
        raise


def record_failure(model: Any, row_id: int, reason: str, *, error_column: str = "error") -> None:
    row = db.session.get(model, row_id)
    row.status, row.finished_at = "failed", utcnow()
    setattr(row, error_column, reason)
    uow.commit()  # the failure is the job's answer, kept although its work was rolled back


class Claimable:
    """Columns of a row that a job claims before working on it (a model mixin)."""

    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


@dataclass(frozen=True)
class Claim:
    """How a job claims rows of ``model``: from one of the ``waiting`` statuses, or from
    ``running`` once the last claim's ``lease`` is over, into ``running``. With
    ``max_attempts``, a row claimed that often is set to ``failed`` instead, with the reason in
    ``error_column``."""

    model: Any
    waiting: tuple[str, ...]
    running: str
    lease: timedelta
    max_attempts: int | None = None
    failed: str = "failed"
    error_column: str = "error"


def _claimable(claim: Claim, row_id: int, now: datetime) -> Any:
    model = claim.model
    expired = or_(model.claimed_at.is_(None), model.claimed_at < now - claim.lease)
    return and_(model.id == row_id, or_(model.status.in_(claim.waiting),
                                        and_(model.status == claim.running, expired)))


def take(claim: Claim, row_id: int) -> datetime | None:
    """Claim the row (committed at once); its claim time, or None when it is not free."""
    now, model = utcnow(), claim.model
    free = _claimable(claim, row_id, now)
    if claim.max_attempts is not None:
        free = and_(free, model.attempts < claim.max_attempts)
    taken = db.session.execute(
        update(model).where(free)
        .values(status=claim.running, claimed_at=now, attempts=model.attempts + 1)
        .execution_options(synchronize_session=False)).rowcount == 1
    if not taken and claim.max_attempts is not None:
        db.session.execute(
            update(model).where(_claimable(claim, row_id, now),
                                model.attempts >= claim.max_attempts)
            .values(status=claim.failed, claimed_at=None, finished_at=now,
                    **{claim.error_column: f"Gave up after {claim.max_attempts} attempts: the "
                                           "worker stopped each time before finishing."})
            .execution_options(synchronize_session=False))
    uow.commit()  # a claim is committed before any work, so a second copy sees it taken
    return now if taken else None


def release(claim: Claim, row_id: int, claimed_at: datetime) -> None:
    """End this job's claim (committed), unless another job has taken the row over since."""
    model = claim.model
    db.session.execute(update(model).where(model.id == row_id, model.claimed_at == claimed_at)
                       .values(claimed_at=None).execution_options(synchronize_session=False))
    uow.commit()  # the claim ends with the job, committed or not


@contextmanager
def claimed(claim: Claim, row_id: int) -> Iterator[bool]:
    """``with claimed(CLAIM, row_id) as mine:`` work only if ``mine``. The claim ends when the
    block does, also on an error; a worker that dies (or exits) keeps it until its lease ends."""
    claimed_at = take(claim, row_id)
    if claimed_at is None:
        yield False
        return
    try:
        yield True
    except Exception:
        uow.rollback()
        release(claim, row_id, claimed_at)
        raise
    release(claim, row_id, claimed_at)


def enqueue(job: Any, *args: Any, job_id: str, timeout: int = 600) -> bool:
    """Queue ``job`` (a Flask-RQ job wrapper); False when Redis cannot be reached."""
    try:
        job.enqueue(*args, job_id=job_id, job_timeout=timeout)
    except (RedisError, OSError) as exc:
        log.warning("could not queue %s: %s", job_id, exc)
        return False
    return True


def enqueue_after_commit(queue: Callable[..., bool], *args: Any, unreachable: str | None = None,
                         queued: str | None = None) -> None:
    """Queue a job once the unit of work is committed (the job reads the rows it wrote).
    ``queue`` is a tasks module's ``queue_…`` (False when Redis cannot be reached): then the
    request flashes ``unreachable``, once however many jobs it queues; else ``queued``, if any.
    The rows stay waiting; the reconciler queues them when Redis is back."""

    def run() -> None:
        if queue(*args):
            if queued:
                flash(queued, "success")
        elif unreachable and has_request_context() and not g.get("queue_unreachable_shown"):
            g.queue_unreachable_shown = True
            flash(unreachable, "warning")

    uow.after_commit(run)


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
# The plain functions given to ``rq cron`` in this process.
_SCHEDULED: set[Callable[..., Any]] = set()


def add_reconcilers(*funcs: Reconciler) -> None:
    """Have :func:`reconcile_all` run these (done by ``portal.wiring``; each is added once,
    however many apps a process creates)."""
    for func in funcs:
        if func not in RECONCILERS:
            RECONCILERS.append(func)


def schedule(job: Any, *, every_seconds: int) -> None:
    """Have ``rq cron`` queue ``job`` (a Flask-RQ job wrapper) every ``every_seconds`` (done by
    ``portal.wiring``; once per process, however many apps it creates)."""
    func = job.func  # the plain function: the wrapper holds the extension, which cannot be pickled
    if func not in _SCHEDULED:
        _SCHEDULED.add(func)
        cron.register(func, "default", interval=every_seconds)


def _reconciler_name(func: Reconciler) -> str:
    """``module.function`` (a pipeline's bound method adds the pipeline's name)."""
    name = f"{func.__module__}.{getattr(func, '__qualname__', repr(func))}"
    owner = getattr(func, "__self__", None)
    return f"{name}:{owner.name}" if isinstance(getattr(owner, "name", None), str) else name


def reconcile_all(min_age: timedelta = DEFAULT_MIN_AGE) -> int:
    total = 0
    for func in RECONCILERS:
        count = func(min_age)
        metrics.requeued(_reconciler_name(func), count)
        total += count
    return total


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


def live_workers(connection: Any, now: datetime | None = None) -> dict[str, int]:
    """How many workers of each queue are alive: beat within ``HEARTBEAT_WITHIN``, or busy
    (RQ's own worker registry; a worker that died without deregistering expires from it, and
    its last heartbeat tells the rest). Queues without one are left out."""
    from rq import Worker

    now = now or datetime.now(UTC)
    alive: dict[str, int] = {}
    for worker in Worker.all(connection=connection):
        beat = worker.last_heartbeat
        if beat is None:
            continue
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)
        if now - beat <= HEARTBEAT_WITHIN or worker.get_state() == "busy":
            for name in worker.queue_names():
                alive[name] = alive.get(name, 0) + 1
    return alive
