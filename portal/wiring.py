"""The one place where the domains are connected to one another and periodic work is
registered. ``create_app`` calls :func:`connect`, so every process that creates the app (the
web server, ``flask rq worker`` and each job's work horse, ``flask rq cron``, ``flask mailings
worker``, the CLI, the tests) holds the same registrations; no module registers anything by
being imported.

A domain imports only the core and the domains below it. When a change in a lower domain must
move a higher one, the lower domain sends a signal declared in its ``signals.py`` and the
higher one's receiver is connected here; a domain that asks another to decide (sign-offs) is
told which handler answers for each kind of subject here too.
"""

from __future__ import annotations

from portal import documents, jobs
from portal.audit import tasks as audit_tasks
from portal.cases import customer_timeline as case_timeline
from portal.cases import services as case_services
from portal.cases import signals as case_signals
from portal.cases import tasks as case_tasks
from portal.customers import people
from portal.customers import tasks as customer_tasks
from portal.lifecycle import tasks as lifecycle_tasks
from portal.mailings import customer_timeline as mailing_timeline
from portal.mailings import services as mailing_services
from portal.mailings import tasks as mailing_tasks
from portal.main import tasks as main_tasks
from portal.notices import pdf as notice_pdf
from portal.notices import services as notice_services
from portal.notices import signals as notice_signals
from portal.notices import tasks as notice_tasks
from portal.notifications import receivers as notification_receivers
from portal.notifications import tasks as notification_tasks
from portal.postmortems import pdf as postmortem_pdf
from portal.postmortems import services as postmortem_services
from portal.public import cache as public_cache
from portal.signoffs import services as signoffs
from portal.signoffs import signals as signoff_signals


def _refresh_public_pages(_sender: object) -> None:
    public_cache.invalidate()


def connect() -> None:
    """Connect receivers, sign-off handlers, reconcilers and cron entries (each only once,
    however many apps a process creates)."""
    # A withdrawn notice's unfinished mailings are cancelled, in the same transaction.
    notice_signals.withdrawn.connect(mailing_services.cancel_for_notice)
    notice_signals.public_content_changed.connect(_refresh_public_pages)
    # Staff e-mails: legal asked for a sign-off, a requester answered, an assignee told.
    signoff_signals.requested.connect(notification_receivers.on_signoff_requested)
    signoff_signals.decided.connect(notification_receivers.on_signoff_decided)
    case_signals.assigned.connect(notification_receivers.on_case_assigned)

    signoffs.handle_decisions(notice_services.SUBJECT, notice_services.after_signoff_decision)
    signoffs.handle_decisions(case_services.SUBJECT, case_services.after_signoff_decision)
    signoffs.handle_decisions(postmortem_services.SUBJECT,
                              postmortem_services.after_signoff_decision)

    # A customer's page shows their cases, replies, payments and the notices mailed to them.
    people.add_sources(case_timeline.entries, mailing_timeline.entries)

    # The documents the shared job renders (``documents.render_document_job``).
    documents.register(notice_pdf.PIPELINE, postmortem_pdf.PIPELINE)

    # Work whose job vanished from Redis is queued again (``main_tasks.reconcile_job``).
    jobs.add_reconcilers(
        audit_tasks.requeue_lost_verifications,
        case_tasks.requeue_lost_replies,
        customer_tasks.requeue_lost_imports,
        lifecycle_tasks.requeue_lost_archives,
        lifecycle_tasks.requeue_lost_retention_runs,
        mailing_tasks.requeue_lost_chunks,
        mailing_tasks.requeue_lost_tests,
        notice_pdf.PIPELINE.requeue_lost,
        postmortem_pdf.PIPELINE.requeue_lost,
    )

    jobs.schedule(main_tasks.reconcile_job, every_seconds=main_tasks.RECONCILE_INTERVAL_SECONDS)
    jobs.schedule(main_tasks.optimize_database_job,
                  every_seconds=main_tasks.OPTIMIZE_INTERVAL_SECONDS)
    jobs.schedule(main_tasks.prune_login_failures_job,
                  every_seconds=main_tasks.PRUNE_INTERVAL_SECONDS)
    jobs.schedule(audit_tasks.checkpoint_job, every_seconds=audit_tasks.CHECKPOINT_INTERVAL_SECONDS)
    jobs.schedule(notice_tasks.publish_due_job,
                  every_seconds=notice_tasks.SCHEDULE_INTERVAL_SECONDS)
    jobs.schedule(lifecycle_tasks.daily_retention_report_job,
                  every_seconds=lifecycle_tasks.DAILY_SECONDS)
    jobs.schedule(notification_tasks.deliver_due_job,
                  every_seconds=notification_tasks.DUE_INTERVAL_SECONDS)
