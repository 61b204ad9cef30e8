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

from portal import documents, errors, i18n, jobs
from portal.accounts import ROLE_LABELS
from portal.audit import services as audit
from portal.audit import tasks as audit_tasks
from portal.cases import claim_models, claim_tasks, offer_models
from portal.cases import customer_timeline as case_timeline
from portal.cases import models as case_models
from portal.cases import offers as case_offers
from portal.cases import refusals as case_refusals
from portal.cases import rules as case_rules
from portal.cases import services as case_services
from portal.cases import signals as case_signals
from portal.cases import tasks as case_tasks
from portal.comms import tasks as comms_tasks
from portal.customers import links as customer_links
from portal.customers import models as customer_models
from portal.customers import payout as customer_payout
from portal.customers import people
from portal.customers import session as customer_session
from portal.customers import tasks as customer_tasks
from portal.events import models as event_models
from portal.events import signals as event_signals
from portal.letters import models as letter_models
from portal.letters import pdf as letter_pdf
from portal.letters import services as letter_services
from portal.lifecycle import tasks as lifecycle_tasks
from portal.mailings import audience as mailing_audience
from portal.mailings import customer_timeline as mailing_timeline
from portal.mailings import models as mailing_models
from portal.mailings import services as mailing_services
from portal.mailings import signals as mailing_signals
from portal.mailings import tasks as mailing_tasks
from portal.main import tasks as main_tasks
from portal.models import PDF_STATUS_LABELS
from portal.my import actions as my_actions
from portal.my import panels as my_panels
from portal.my import programme_offer as my_programme_offer
from portal.my import tasks as my_tasks
from portal.notices import comparison as notice_comparison
from portal.notices import models as notice_models
from portal.notices import pdf as notice_pdf
from portal.notices import publishing as notice_publishing
from portal.notices import services as notice_services
from portal.notices import settings as notice_settings
from portal.notices import signals as notice_signals
from portal.notices import tasks as notice_tasks
from portal.notifications import receivers as notification_receivers
from portal.notifications import tasks as notification_tasks
from portal.payouts import files as payout_files
from portal.payouts import models as payout_models
from portal.payouts import result_tasks as payout_result_tasks
from portal.payouts import results as payout_results
from portal.postmortems import models as postmortem_models
from portal.postmortems import pdf as postmortem_pdf
from portal.postmortems import services as postmortem_services
from portal.programmes import deadline_tasks as programme_deadline_tasks
from portal.programmes import entitlement_tasks
from portal.programmes import mailing as programme_mailing
from portal.programmes import membership as programme_membership
from portal.programmes import models as programme_models
from portal.programmes import rules as programme_rules
from portal.programmes import services as programme_services
from portal.programmes import signals as programme_signals
from portal.programmes import tasks as programme_tasks
from portal.programmes import unclaimed as programme_unclaimed
from portal.public import cache as public_cache
from portal.public import services as public_services
from portal.public import tasks as public_tasks
from portal.signoffs import models as signoff_models
from portal.signoffs import services as signoffs
from portal.signoffs import signals as signoff_signals
from portal.signoffs import stamp
from portal.subscriptions import delivery as subscription_delivery
from portal.subscriptions import models as subscription_models
from portal.subscriptions import tasks as subscription_tasks


def _refresh_public_pages(_sender: object) -> None:
    public_cache.invalidate()
    public_tasks.on_public_change()  # the static snapshot nginx serves follows


def _register_terms() -> None:
    """The label maps of the codes that messages (audit entries, sign-off titles) keep as
    ``term(kind, code)`` and templates show with ``term_label(kind, code)``."""
    i18n.register_terms(
        languages={"postmortem_step": "zh-CN"},
        role=ROLE_LABELS,
        event=event_models.LABELS,
        target_metric=event_models.TARGET_METRICS,
        case=case_models.LABELS,
        claim=claim_models.CLAIM_LABELS,
        case_action={t.action: t.label for t in case_rules.TRANSITIONS},
        reply_status=case_models.REPLY_LABELS,
        evidence_uploader=case_models.UPLOADER_LABELS,
        evidence_type=case_models.EVIDENCE_TYPES,
        import_status=customer_models.IMPORT_LABELS,
        signoff_status=signoff_models.STATUS_LABELS,
        signoff_subject=signoff_models.SUBJECT_LABELS,
        signoff_void=signoff_models.VOID_REASONS,
        notice=notice_models.STATUS_LABELS,
        pdf_kind=notice_models.PDF_KINDS,
        pdf_status=PDF_STATUS_LABELS,
        mailing_status=mailing_models.STATUS_LABELS,
        mailing_change=mailing_models.CHANGE_LABELS,
        test_send_status=mailing_models.TEST_SEND_LABELS,
        unsubscribe_via=mailing_models.UNSUBSCRIBE_VIA,
        postmortem_step=postmortem_models.STEP_TERMS,
        pdf_stamp=stamp.STAMP_CHOICES,
        payment_refusal=case_refusals.PAYMENT_REFUSALS,
        payout_line=payout_results.LINE_STATUS_LABELS,
        offer_status=offer_models.OFFER_STATUS_LABELS,
        offer_void=offer_models.OFFER_VOID_REASONS,
        offer_required=offer_models.REQUIRED_LABELS,
        payout_method=customer_payout.METHOD_LABELS,
        signoff_refusal=signoff_models.DECIDE_REFUSALS,
        publish_refusal=notice_models.PUBLISH_REFUSALS,
        notice_setting=notice_settings.SETTING_LABELS,
        customer_link=customer_links.KIND_LABELS,
        programme_status=programme_models.PROGRAMME_STATUS_LABELS,
        programme_field=programme_services.FIELD_LABELS,
        programme_exclusion=programme_rules.EXCLUSION_LABELS,
        unclaimed_reason=programme_unclaimed.UNCLAIMED_REASONS,
        payout_batch_status=payout_models.BATCH_STATUS_LABELS,
        payout_line_status=payout_models.LINE_STATUS_LABELS,
        payout_file_format=payout_files.FORMAT_LABELS,
        subscription_scope=subscription_models.SCOPE_LABELS,
        subscription_removal=subscription_models.REMOVAL_LABELS,
        subscription_status=subscription_models.STATUS_LABELS,
        letter_source=letter_models.SOURCE_LABELS,
    )


def connect() -> None:
    """Connect receivers, sign-off handlers, reconcilers and cron entries (each only once,
    however many apps a process creates), and name the label maps of the codes."""
    _register_terms()
    # A withdrawn notice's unfinished mailings are cancelled, in the same transaction.
    notice_signals.withdrawn.connect(mailing_services.cancel_for_notice)
    notice_signals.public_content_changed.connect(_refresh_public_pages)
    event_signals.public_settings_changed.connect(_refresh_public_pages)
    # A published version (first or an update) reaches the public subscribers, in the same
    # transaction as its rows (``portal.subscriptions.delivery``).
    notice_signals.published.connect(subscription_delivery.on_published)
    signoff_signals.decided.connect(subscription_delivery.on_signoff_decided)
    # A refused attempt (a second payment, a duplicate case, a decision one may not take)
    # is kept in the audit trail, in its own transaction after the request's rollback.
    errors.attempt_refused.connect(audit.record_refusal)
    # Staff e-mails: legal asked for a sign-off, a requester answered, an assignee told.
    signoff_signals.requested.connect(notification_receivers.on_signoff_requested)
    signoff_signals.decided.connect(notification_receivers.on_signoff_decided)
    case_signals.assigned.connect(notification_receivers.on_case_assigned)
    case_signals.customer_wrote.connect(notification_receivers.on_customer_wrote)
    # A programme's case adjusted by an agent leaves the programme; a paid one pays its member.
    case_signals.approval_changed.connect(programme_membership.leave_programme)
    case_signals.paid.connect(programme_membership.member_paid)
    case_signals.paid_many.connect(programme_membership.members_paid)

    # The customer page (/my): its language comes from the customer's session first; each
    # case shows its panels (``portal.my.panels``: other features add theirs here).
    i18n.add_locale_source(customer_session.session_locale)
    my_panels.add_case_panels(
        my_panels.CasePanel("reply", "my/_reply_panel.html", order=10),
        my_panels.CasePanel("offer", "my/_offer_panel.html", my_actions.offer_context, order=5),
        my_panels.CasePanel("evidence", "my/_evidence_panel.html", my_actions.evidence_context,
                            order=20))
    my_panels.add_case_panels(
        my_panels.CasePanel(my_programme_offer.PANEL, "my/_programme_panel.html",
                            my_programme_offer.programme_context, order=4))
    my_panels.add_page_sections(
        my_panels.PageSection("payout", "my/_payout_section.html", my_actions.payout_context,
                              order=10),
        my_panels.PageSection("claim", "my/_claim_section.html", my_actions.claim_context,
                              order=20))

    # A programme's mailings: its members are an audience kind of the mailings; what a
    # message did (delivered, no address, bounced) moves the members.
    mailing_audience.register_kind(programme_mailing.KIND, programme_mailing.AUDIENCE_KIND)
    mailing_signals.delivered.connect(programme_mailing.on_delivered)
    mailing_signals.undeliverable.connect(programme_mailing.on_undeliverable)

    # Approving a notice planned "on approval" publishes it (``notices.publishing``).
    signoffs.handle_decisions(notice_services.SUBJECT, notice_publishing.after_signoff_decision)
    signoffs.show_changes(notice_services.SUBJECT, notice_comparison.signoff_changes)
    signoffs.handle_decisions(case_services.SUBJECT, case_services.after_signoff_decision)
    signoffs.handle_decisions(postmortem_services.SUBJECT,
                              postmortem_services.after_signoff_decision)
    signoffs.handle_decisions(case_offers.SUBJECT, case_offers.after_terms_decision)
    # One legal sign-off per programme; a change of the event's entitlements voids it.
    signoffs.handle_decisions(programme_services.SUBJECT,
                              programme_services.after_signoff_decision)
    signoffs.show_changes(programme_services.SUBJECT, programme_services.signoff_changes)
    programme_signals.entitlements_changed.connect(programme_services.on_entitlements_changed)

    # A customer's page shows their cases, replies, payments and the notices mailed to them.
    people.add_sources(case_timeline.entries, mailing_timeline.entries)

    # The documents the shared job renders (``documents.render_document_job``).
    documents.register(notice_pdf.PIPELINE, postmortem_pdf.PIPELINE, payout_files.PIPELINE,
                       letter_pdf.PIPELINE)
    # /verify knows a letter's code too (``portal.letters``, above the public site).
    public_services.add_finder(letter_services.find_code)

    # Work whose job vanished from Redis is queued again (``main_tasks.reconcile_job``).
    jobs.add_reconcilers(
        audit_tasks.requeue_lost_verifications,
        case_tasks.requeue_lost_replies,
        claim_tasks.requeue_lost_claim_mails,
        customer_tasks.requeue_lost_imports,
        entitlement_tasks.requeue_lost_imports,
        lifecycle_tasks.requeue_lost_archives,
        lifecycle_tasks.requeue_lost_retention_runs,
        mailing_tasks.requeue_lost_chunks,
        mailing_tasks.requeue_lost_tests,
        my_tasks.requeue_lost_link_mails,
        payout_result_tasks.requeue_lost_results,
        notice_pdf.PIPELINE.requeue_lost,
        postmortem_pdf.PIPELINE.requeue_lost,
        letter_pdf.PIPELINE.requeue_lost,
        programme_tasks.requeue_lost_generations,
        payout_files.PIPELINE.requeue_lost,
        subscription_tasks.requeue_lost_subscription_mails,
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
    jobs.schedule(claim_tasks.purge_claims_job, every_seconds=claim_tasks.PURGE_INTERVAL_SECONDS)
    jobs.schedule(notification_tasks.deliver_due_job,
                  every_seconds=notification_tasks.DUE_INTERVAL_SECONDS)
    jobs.schedule(public_tasks.refresh_snapshot_job,
                  every_seconds=public_tasks.REFRESH_INTERVAL_SECONDS)
    jobs.schedule(programme_deadline_tasks.programme_deadlines_job,
                  every_seconds=programme_deadline_tasks.INTERVAL_SECONDS)
    jobs.schedule(subscription_tasks.purge_subscriptions_job,
                  every_seconds=subscription_tasks.PURGE_INTERVAL_SECONDS)
    # The communications lead's reminders: the next public update due soon, or overdue.
    jobs.schedule(comms_tasks.cadence_job, every_seconds=comms_tasks.INTERVAL_SECONDS)
