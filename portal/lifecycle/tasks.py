"""RQ jobs of the data lifecycle: building archives, retention runs and the daily report.
Jobs take row ids, claim their row and call services; a job may be queued twice, and a
second copy finds the row claimed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal import jobs, uow
from portal.extensions import rq
from portal.lifecycle import export, retention
from portal.lifecycle.models import ArchiveStatus, EventArchive, RetentionRun, RetentionRunStatus
from portal.models import utcnow

ARCHIVE_TIMEOUT_SECONDS = 1800
RETENTION_TIMEOUT_SECONDS = 3600
DAILY_SECONDS = 24 * 3600


def archive_job_id(archive_id: int) -> str:
    return f"event-archive-{archive_id}"


def retention_job_id(run_id: int) -> str:
    return f"retention-run-{run_id}"


ARCHIVE_CLAIM = jobs.Claim(EventArchive, waiting=(ArchiveStatus.QUEUED,),
                           running=ArchiveStatus.RUNNING,
                           lease=timedelta(seconds=ARCHIVE_TIMEOUT_SECONDS))
RETENTION_CLAIM = jobs.Claim(RetentionRun, waiting=(RetentionRunStatus.CONFIRMED,),
                             running=RetentionRunStatus.RUNNING,
                             lease=timedelta(seconds=RETENTION_TIMEOUT_SECONDS))


@rq.job
@jobs.unit_of_work
def build_archive_job(archive_id: int) -> str | None:
    with jobs.claimed(ARCHIVE_CLAIM, archive_id) as mine:
        return export.build_archive(archive_id) if mine else None


@rq.job
@jobs.unit_of_work
def run_retention_job(run_id: int) -> None:
    """One run at a time per row: its erased count and its audit entry are written once."""
    with jobs.claimed(RETENTION_CLAIM, run_id) as mine:
        if mine:
            # Committed per batch of customers: a long run keeps what it erased so far, and
            # the erased customers' files are deleted once their batch is committed.
            retention.run_retention(run_id, batch_done=uow.commit)


def queue_archive(archive_id: int) -> bool:
    return jobs.enqueue(build_archive_job, archive_id, job_id=archive_job_id(archive_id),
                        timeout=ARCHIVE_TIMEOUT_SECONDS)


def queue_retention(run_id: int) -> bool:
    return jobs.enqueue(run_retention_job, run_id, job_id=retention_job_id(run_id),
                        timeout=RETENTION_TIMEOUT_SECONDS)


def requeue_lost_archives(min_age: timedelta) -> int:
    stmt = select(EventArchive.id).where(EventArchive.status.in_([ArchiveStatus.QUEUED,
                                                                  ArchiveStatus.RUNNING]),
                                         EventArchive.requested_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, archive_job_id, queue_archive)


def requeue_lost_retention_runs(min_age: timedelta) -> int:
    stmt = select(RetentionRun.id).where(RetentionRun.status.in_([RetentionRunStatus.CONFIRMED,
                                                                  RetentionRunStatus.RUNNING]),
                                         RetentionRun.confirmed_at < utcnow() - min_age)
    return jobs.requeue_lost(stmt, retention_job_id, queue_retention)


@rq.job
@jobs.unit_of_work
def daily_retention_report_job() -> int | None:
    """Only prepares a dry-run report for an admin to confirm; it never erases by itself."""
    run = retention.prepare_daily_report()
    return run.id if run else None
