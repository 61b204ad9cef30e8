"""Periodic jobs: the reconciler (the database is the truth, so re-queue work whose job
vanished) and the pruning of old failed sign-ins."""

from __future__ import annotations

from sqlalchemy import text

from portal import jobs
from portal.auth import services as auth_services
from portal.extensions import db, rq

RECONCILE_INTERVAL_SECONDS = 60
PRUNE_INTERVAL_SECONDS = 3600
OPTIMIZE_INTERVAL_SECONDS = 3600


@rq.job
@jobs.unit_of_work
def reconcile_job() -> int:
    return jobs.reconcile_all()


@rq.job
@jobs.unit_of_work
def optimize_database_job() -> None:
    """SQLite keeps no planner statistics unless asked (PostgreSQL's autovacuum analyzes by
    itself): without them it picks poor indexes for the case list."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("PRAGMA optimize"))


@rq.job
@jobs.unit_of_work
def prune_login_failures_job() -> int:
    return auth_services.prune_login_failures()
