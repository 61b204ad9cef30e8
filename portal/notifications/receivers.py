"""The signals of lower domains that write staff notifications (connected in
``portal.wiring``): rows in the change's transaction, and for what is due at once, the
delivery job queued after the commit."""

from __future__ import annotations

from portal import jobs
from portal.accounts import User
from portal.cases.models import Case, CaseNote
from portal.notifications import services, tasks
from portal.notifications.models import Notification
from portal.signoffs.models import SignoffRequest


def _queue_due(rows: list[Notification]) -> None:
    for row in rows:
        if row.kind not in services.DIGESTED:
            jobs.enqueue_after_commit(tasks.queue_delivery, row.recipient_id)


def on_signoff_requested(request: SignoffRequest) -> None:
    services.signoff_requested(request)  # legal's digest goes out with the cron job


def on_signoff_decided(request: SignoffRequest, *, actor: User) -> None:
    _queue_due(services.signoff_decided(request, actor))


def on_case_assigned(case: Case, *, actor: User | None) -> None:
    _queue_due(services.case_assigned(case, actor))


def on_customer_wrote(case: Case, *, note: CaseNote) -> None:
    _queue_due(services.customer_wrote(case))
