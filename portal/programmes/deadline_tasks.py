"""The periodic job of opt-in programmes: reminders before the deadline, unclaimed after it
(scheduled in ``portal.wiring``)."""

from __future__ import annotations

from portal import jobs
from portal.extensions import rq
from portal.models import utcnow
from portal.programmes import optin, reminders

INTERVAL_SECONDS = 15 * 60


@rq.job(queue="default")
@jobs.unit_of_work
def programme_deadlines_job() -> tuple[int, int]:
    """Send the reminders that fell due and close the deadlines that passed; returns (reminders
    sent, members unclaimed). Safe to run again, or twice at once."""
    now = utcnow()
    return reminders.send_due_reminders(now), optin.close_deadlines(now)


def queue_deadlines() -> bool:
    return jobs.enqueue(programme_deadlines_job, job_id="programme-deadlines", timeout=600)
