"""Publishing a notice: now or on its schedule, in an emergency before legal review, and its
withdrawal. Only the version legal approved is published (its sign-off binds the text); one
conditional update of the notice row decides between publishers at once.

Every function that changes state writes its audit entry in the caller's unit of work; the
caller queues the follow-up work (PDFs, the public page cache) after the commit.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, or_, select, update

from portal import documents, uow, verification
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import text_digest, utcnow
from portal.notices import signals
from portal.notices.models import (
    PUBLISH_REFUSALS,
    Notice,
    NoticeStatus,
    NoticeVersion,
    Publication,
)
from portal.notices.services import (
    SUBJECT,
    may_withdraw,
    request_pdfs,
    request_signoff,
    scope,
    snapshot,
)
from portal.notices.services import after_signoff_decision as after_decision
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest, SignoffStatus


def _check_grant(notice: Notice, version: NoticeVersion) -> SignoffRequest:
    grant = signoffs.granted(SUBJECT, version.id)
    if grant is None or grant.retroactive:
        raise RuleViolation(N_("Legal has not approved this version."))
    if not signoffs.check_binding(grant, snapshot(notice, version)):
        raise RuleViolation(N_("The approved text differs from this version; request a new "
                               "sign-off."))
    return grant


def publish(notice: Notice, *, actor: User, now: datetime | None = None) -> Publication | None:
    """Publish the latest version now, or schedule it when the approved plan says later.
    Returns the publication, or None when it was scheduled."""
    now = now or utcnow()
    version = notice.latest_version
    if version is None or notice.status == NoticeStatus.WITHDRAWN:
        raise RuleViolation(_("A withdrawn notice cannot be published."))
    if version.id == notice.published_version_id:
        raise RuleViolation(_("This version is already published."))
    grant = _check_grant(notice, version)
    if notice.planned_publish_at and notice.planned_publish_at > now:
        notice.scheduled_at = notice.planned_publish_at
        notice.scheduled_version_id = version.id
        audit.record("notice.schedule", "notice", notice.id,
                     N_("Notice %(ref)s v%(n)d scheduled for %(when)s", ref=notice.ref,
                        n=version.number, when=notice.scheduled_at.isoformat()),
                     after=notice.audit_state(),
                     actor=actor)
        return None
    publication = _publish_version(notice, version, actor=actor, signoff=grant, now=now)
    return publication


def _publish_version(
    notice: Notice, version: NoticeVersion, *, actor: User | None, now: datetime,
    signoff: SignoffRequest | None, emergency_reason: str | None = None,
) -> Publication:
    """Make ``version`` the published one, in one conditional UPDATE of the notice row: of
    several publishers at once (a double click, two tabs, the scheduler) exactly one matches
    it; the others wait for its commit, then match nothing and are told. The unique key on
    (notice, version) of the publications backs this up."""
    before = notice.audit_state()
    is_update = notice.published_version_id is not None
    claimed = db.session.execute(
        update(Notice).where(
            Notice.id == notice.id, Notice.status != NoticeStatus.WITHDRAWN,
            or_(Notice.published_version_id.is_(None),
                Notice.published_version_id != version.id))
        .values(published_version_id=version.id, status=NoticeStatus.PUBLISHED,
                first_published_at=func.coalesce(Notice.first_published_at, now),
                last_published_at=now, scheduled_at=None, scheduled_version_id=None,
                publish_refusal=None)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise RuleViolation(_("This version is already published."))
    db.session.expire(notice)  # read back what the UPDATE wrote
    publication = Publication(
        notice=notice, version_id=version.id, published_at=now,
        published_by_id=actor.id if actor else None, signoff_id=signoff.id if signoff else None,
        emergency=emergency_reason is not None, emergency_reason=emergency_reason,
        verification_code=verification.version_code(version.id, version.content_hash),
    )
    db.session.add(publication)
    db.session.flush()
    if emergency_reason:
        message = N_("Notice %(ref)s v%(n)d emergency-published", ref=notice.ref,
                     n=version.number)
    elif is_update:
        message = N_("Notice %(ref)s v%(n)d updated", ref=notice.ref, n=version.number)
    else:
        message = N_("Notice %(ref)s v%(n)d published", ref=notice.ref, n=version.number)
    audit.record("notice.emergency_publish" if emergency_reason else "notice.publish",
                 "notice", notice.id, message,
                 before=before, after={**notice.audit_state(),
                                       "reason_sha256": text_digest(emergency_reason)},
                 actor=actor)
    signals.published.send(notice, version_id=version.id, emergency=bool(emergency_reason))
    return publication


def after_signoff_decision(request: SignoffRequest, actor: User) -> str | None:
    """Legal decided on a notice version (the handler ``portal.wiring`` registers). An approval
    of a notice planned "on approval" publishes the version in the same unit of work, with the
    checks of a publication by hand (the grant re-checked against a fresh snapshot) and its
    audit entry. When it cannot, the approval stands and the notice says why."""
    after_decision(request, actor)
    version = db.session.get(NoticeVersion, request.subject_id)
    notice = version.notice
    if (request.status != SignoffStatus.APPROVED or request.retroactive
            or not notice.publish_on_approval or notice.planned_publish_at):
        return None
    refusal = _why_not_publishable(notice, version)
    if refusal is None:
        try:
            _publish_version(notice, version, actor=actor, signoff=request, now=utcnow())
        except RuleViolation:  # a racing publisher won; nothing was written here
            refusal = "published"
    if refusal is not None:
        notice.publish_refusal = refusal
        audit.record("notice.publish_refused", "notice", notice.id,
                     N_("Notice %(ref)s v%(n)d approved but not published on approval: "
                        "%(reason)s", ref=notice.ref, n=version.number,
                        reason=term("publish_refusal", refusal)),
                     after=notice.audit_state(), actor=actor)
        return str(PUBLISH_REFUSALS[refusal])
    after_publication([notice.id])
    return _("Notice %(ref)s approved and published.", ref=notice.ref)


def _why_not_publishable(notice: Notice, version: NoticeVersion) -> str | None:
    """The PUBLISH_REFUSALS key saying why ``version`` cannot go out now, or None."""
    if notice.status == NoticeStatus.WITHDRAWN:
        return "withdrawn"
    if notice.latest_version is None or version.id != notice.latest_version.id:
        return "not_latest"
    if version.id == notice.published_version_id:
        return "published"
    try:
        _check_grant(notice, version)
    except RuleViolation:
        return "not_covered"
    return None


def publish_due(now: datetime | None = None) -> list[int]:
    """Publish the scheduled notices whose time has come (run by the scheduler job).
    Re-checks the grant: a schedule whose sign-off no longer covers the text is dropped."""
    now = now or utcnow()
    published = []
    due = db.session.scalars(select(Notice).where(Notice.scheduled_at.is_not(None),
                                                  Notice.scheduled_at <= now)).all()
    for notice in due:
        version = db.session.get(NoticeVersion, notice.scheduled_version_id)
        try:
            if version is None or version.id != notice.latest_version.id:
                raise RuleViolation(N_("the scheduled version is no longer the latest"))
            grant = _check_grant(notice, version)
        except RuleViolation as err:
            notice.scheduled_at = None
            notice.scheduled_version_id = None
            audit.record("notice.schedule_dropped", "notice", notice.id,
                         N_("Scheduled publication of %(ref)s dropped: %(reason)s",
                            ref=notice.ref, reason=err.text))
            continue
        try:
            _publish_version(notice, version, actor=None, signoff=grant, now=now)
        except RuleViolation:  # published by someone else meanwhile: nothing was written
            continue
        published.append(notice.id)
    return published


def emergency_publish(notice: Notice, *, reason: str, actor: User,
                      now: datetime | None = None) -> Publication:
    """Publish before legal review: admin only, sev1/sev2 only, with a reason. A retroactive
    sign-off request is opened for legal to review afterwards."""
    if actor.role != Role.ADMIN:
        raise RuleViolation(_("Only the incident lead (admin) can publish before review."))
    if not notice.event.urgent:
        raise RuleViolation(_("Emergency publishing is only for sev1 and sev2 events."))
    reason = reason.strip()
    if not reason:
        raise RuleViolation(_("Give the reason for publishing before legal review."),
                            field="reason")
    version = notice.latest_version
    if version is None or notice.status == NoticeStatus.WITHDRAWN:
        raise RuleViolation(_("A withdrawn notice cannot be published."))
    if version.id == notice.published_version_id:
        raise RuleViolation(_("This version is already published."))
    previous = notice.published_version_id
    # The notice row first, as in every publication: a racing publisher waits here.
    publication = _publish_version(notice, version, actor=actor, signoff=None,
                                   now=now or utcnow(), emergency_reason=reason)
    signoffs.void_scope(scope(notice), "published in an emergency", actor=actor,
                        keep_subject_ids={previous} - {None})
    request_signoff(notice, actor=actor, retroactive=True)
    return publication


def withdraw(notice: Notice, *, reason: str, hide: bool, actor: User) -> None:
    if not may_withdraw(actor, notice):
        raise RuleViolation(_("Only a published notice can be withdrawn."))
    reason = reason.strip()
    if not reason:
        raise RuleViolation(_("Give the reason for withdrawing the notice."), field="reason")
    before = notice.audit_state()
    notice.status = NoticeStatus.WITHDRAWN
    notice.withdrawn_at = utcnow()
    notice.withdrawn_reason = reason
    notice.hidden = hide
    notice.scheduled_at = None
    notice.scheduled_version_id = None
    signoffs.void_scope(scope(notice), "notice withdrawn", actor=actor,
                        keep_subject_ids={notice.published_version_id} - {None})
    audit.record("notice.withdraw", "notice", notice.id,
                 N_("Notice %(ref)s withdrawn and hidden", ref=notice.ref) if hide
                 else N_("Notice %(ref)s withdrawn", ref=notice.ref),

                 before=before, after={**notice.audit_state(),
                                       "reason_sha256": text_digest(reason)}, actor=actor)
    signals.withdrawn.send(notice, reason="notice withdrawn", actor=actor)


def emergency_publications_awaiting_review() -> list[Publication]:
    """Emergency publications whose retroactive sign-off is still pending."""
    pending_versions = select(SignoffRequest.subject_id).where(
        SignoffRequest.subject_type == SUBJECT, SignoffRequest.retroactive.is_(True),
        SignoffRequest.status == SignoffStatus.PENDING)
    return list(db.session.scalars(select(Publication).where(
        Publication.emergency.is_(True), Publication.version_id.in_(pending_versions)
    ).order_by(Publication.published_at)))


def after_publication(notice_ids: list[int]) -> None:
    """What follows a publication: the signed PDFs' rows (one per language), in the same unit
    of work; once it is committed, a fresh public cache and the PDFs' jobs."""
    uow.after_commit(signals.public_content_changed.send)
    for notice_id in notice_ids:
        notice = db.session.get(Notice, notice_id)
        for row in request_pdfs(notice.published_version, "signed").values():
            documents.queue_after_commit(row)
