"""The reconciler job: the database is the truth, so re-queue work whose job vanished."""

from __future__ import annotations

from rq import cron

from portal import jobs
from portal.audit import tasks as _audit_tasks  # noqa: F401  (registers its reconciler)
from portal.extensions import rq

RECONCILE_INTERVAL_SECONDS = 60


@rq.job
def reconcile_job() -> int:
    return jobs.reconcile_all()


# The plain function: the wrapper holds the extension, which cannot be pickled.
cron.register(reconcile_job.func, "default", interval=RECONCILE_INTERVAL_SECONDS)
