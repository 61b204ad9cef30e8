"""Periodic jobs: the reconciler (the database is the truth, so re-queue work whose job
vanished) and the pruning of old failed sign-ins."""

from __future__ import annotations

from rq import cron

from portal import jobs
from portal.audit import tasks as _audit_tasks  # noqa: F401  (registers its reconciler)
from portal.auth import services as auth_services
from portal.cases import tasks as _case_tasks  # noqa: F401  (registers its reconciler)
from portal.customers import tasks as _customer_tasks  # noqa: F401  (registers its reconciler)
from portal.extensions import rq
from portal.notices import tasks as _notice_tasks  # noqa: F401  (registers its reconciler)

RECONCILE_INTERVAL_SECONDS = 60
PRUNE_INTERVAL_SECONDS = 3600


@rq.job
def reconcile_job() -> int:
    return jobs.reconcile_all()


# The plain function: the wrapper holds the extension, which cannot be pickled.
cron.register(reconcile_job.func, "default", interval=RECONCILE_INTERVAL_SECONDS)


@rq.job
def prune_login_failures_job() -> int:
    return auth_services.prune_login_failures()


cron.register(prune_login_failures_job.func, "default", interval=PRUNE_INTERVAL_SECONDS)
