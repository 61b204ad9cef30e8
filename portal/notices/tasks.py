"""RQ jobs of the notices: scheduled publications. Jobs take ids, call services. (Their PDFs
are made by the shared document job; see ``portal.notices.pdf``.)"""

from __future__ import annotations

from portal import jobs
from portal.extensions import rq
from portal.notices import publishing

SCHEDULE_INTERVAL_SECONDS = 30


@rq.job
@jobs.unit_of_work
def publish_due_job() -> list[int]:
    published = publishing.publish_due()
    if published:
        publishing.after_publication(published)
    return published
