"""Periodic jobs: the reconciler (the database is the truth, so re-queue work whose job
vanished) and the pruning of old failed sign-ins."""

from __future__ import annotations

from rq import cron
from sqlalchemy import text

from portal import jobs
from portal.audit import tasks as _audit_tasks  # noqa: F401  (registers its reconciler)
from portal.auth import services as auth_services
from portal.cases import tasks as _case_tasks  # noqa: F401  (registers its reconciler)
from portal.customers import tasks as _customer_tasks  # noqa: F401  (registers its reconciler)
from portal.extensions import db, rq
from portal.lifecycle import tasks as _lifecycle_tasks  # noqa: F401  (reconciler, daily report)
from portal.mailings import tasks as _mailing_tasks  # noqa: F401  (registers its reconcilers)
from portal.notices import tasks as _notice_tasks  # noqa: F401  (registers its reconciler)
from portal.postmortems import tasks as _postmortem_tasks  # noqa: F401  (registers its reconciler)

RECONCILE_INTERVAL_SECONDS = 60
PRUNE_INTERVAL_SECONDS = 3600
OPTIMIZE_INTERVAL_SECONDS = 3600


@rq.job
@jobs.unit_of_work
def reconcile_job() -> int:
    return jobs.reconcile_all()


# The plain function: the wrapper holds the extension, which cannot be pickled.
cron.register(reconcile_job.func, "default", interval=RECONCILE_INTERVAL_SECONDS)


@rq.job
@jobs.unit_of_work
def optimize_database_job() -> None:
    """SQLite keeps no planner statistics unless asked (PostgreSQL's autovacuum analyzes by
    itself): without them it picks poor indexes for the case list."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("PRAGMA optimize"))


cron.register(optimize_database_job.func, "default", interval=OPTIMIZE_INTERVAL_SECONDS)


@rq.job
@jobs.unit_of_work
def prune_login_failures_job() -> int:
    return auth_services.prune_login_failures()


cron.register(prune_login_failures_job.func, "default", interval=PRUNE_INTERVAL_SECONDS)
