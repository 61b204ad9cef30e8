"""The sign-off rules, for every kind of subject.

A subject's domain opens a request with a snapshot; legal decides once; the domain is told of
the decision through its handler (registered by ``portal.wiring``). Before acting on a grant,
the domain calls :func:`check_binding` with a fresh snapshot: if the content moved, the grant
does not cover it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select, update

from portal.accounts import Role, User
from portal.audit import services as audit
from portal.audit.services import canonical_json
from portal.errors import Refusal, RuleViolation
from portal.extensions import db
from portal.i18n import N_, Message, term
from portal.models import utcnow
from portal.signoffs import signals
from portal.signoffs.models import (
    DECISIONS,
    STANDING,
    SignoffRequest,
    SignoffStatus,
)

# Subjects legal may mark mandatory (sent even to customers who unsubscribed).
MANDATORY_SUBJECTS = ("notice_version",)
# What a subject's domain does when legal decides; it may answer with a sentence saying what
# followed (e.g. "published"), which the decider is shown.
DecisionHandler = Callable[[SignoffRequest, User], str | None]
_HANDLERS: dict[str, DecisionHandler] = {}


# What the decision page shows of a subject's change since legal last approved it: the
# subject's domain answers with a template name and its values (see ``show_changes``).
ChangeView = Callable[[SignoffRequest], dict[str, Any] | None]
_CHANGE_VIEWS: dict[str, ChangeView] = {}


def handle_decisions(subject_type: str, handler: DecisionHandler) -> None:
    """Register what a domain does when legal decides on one of its subjects (done by
    ``portal.wiring``)."""
    _HANDLERS[subject_type] = handler


def show_changes(subject_type: str, view: ChangeView) -> None:
    """Register how a domain shows what changed in a subject since its last approval (done
    by ``portal.wiring``); ``view(request)`` returns ``{"template": …, **values}`` or None."""
    _CHANGE_VIEWS[subject_type] = view


def changes(request: SignoffRequest) -> dict[str, Any] | None:
    """What changed since the last approval, as the subject's domain shows it (or None)."""
    view = _CHANGE_VIEWS.get(request.subject_type)
    return view(request) if view else None


def ever_granted(subject_type: str, subject_ids: list[int]) -> set[int]:
    """Which of the subjects legal approved at some point: granted now, or granted and voided
    later (only a grant is both decided and voidable)."""
    if not subject_ids:
        return set()
    return set(db.session.scalars(select(SignoffRequest.subject_id).where(
        SignoffRequest.subject_type == subject_type, SignoffRequest.subject_id.in_(subject_ids),
        (SignoffRequest.status == SignoffStatus.APPROVED)
        | ((SignoffRequest.status == SignoffStatus.VOIDED)
           & SignoffRequest.decided_by_id.is_not(None)))))


def snapshot_hash(snapshot: Any) -> str:
    return hashlib.sha256(canonical_json(snapshot).encode()).hexdigest()


def open_request(
    *, subject_type: str, subject_id: int, scope: str, title: Message, snapshot: Any,
    author_id: int | None, requested_by: User | None, retroactive: bool = False,
) -> SignoffRequest:
    """Ask legal to approve exactly ``snapshot`` (the caller commits). ``title`` names the
    subject as ``N_(…)`` with codes as ``term``s, so each reader sees it in their language."""
    existing = db.session.scalar(select(SignoffRequest).where(
        SignoffRequest.subject_type == subject_type, SignoffRequest.subject_id == subject_id,
        SignoffRequest.status.in_(STANDING)))
    if existing is not None:
        raise RuleViolation(_("This version already has an open or granted sign-off."))
    snapshot = audit.normalise(snapshot)
    request = SignoffRequest(
        subject_type=subject_type, subject_id=subject_id, scope=scope,
        title=title.in_english()[:300], title_message=audit.normalise(title.to_json()),
        snapshot=snapshot, snapshot_hash=snapshot_hash(snapshot), author_id=author_id,
        requested_by_id=requested_by.id if requested_by else None, retroactive=retroactive,
        status=SignoffStatus.PENDING, requested_at=utcnow(),
    )
    db.session.add(request)
    db.session.flush()
    audit.record("signoff.request", "signoff", request.id,
                 N_("Sign-off requested for %(subject)s (retroactive)", subject=title)
                 if retroactive else N_("Sign-off requested for %(subject)s", subject=title),
                 after=request.audit_state(), actor=requested_by)
    signals.requested.send(request)
    return request


def _subject(request: SignoffRequest) -> Message | str:
    """The request's title as a message parameter (the stored text for older requests)."""
    return (request.title if request.title_message is None
            else Message.from_json(request.title_message))


def may_decide(request: SignoffRequest, user: User) -> str | None:
    """Why ``user`` may not decide on ``request``, or None when they may."""
    if user.role != Role.LEGAL:
        return _("Only the legal team decides sign-offs.")
    if request.status != SignoffStatus.PENDING:
        return _("This request has already been decided.")
    if user.id == request.requested_by_id:
        return _("You requested this sign-off; another legal reviewer must decide.")
    if user.id == request.author_id:
        return _("You wrote this content; another legal reviewer must decide.")
    return None


def _why_not(request: SignoffRequest, user: User) -> str:
    """:func:`may_decide`'s reason for the audit trail (in English, as a code)."""
    if user.role != Role.LEGAL:
        return "not_legal"
    return "own_request" if user.id == request.requested_by_id else "own_content"


def decide(request_id: int, decision: str, comment: str, *, actor: User,
           mandatory: bool = False) -> SignoffRequest:
    """Record legal's decision. Exactly one decision wins, even when two reviewers act at once:
    the status changes only if it is still pending, in one UPDATE. The subject's handler runs
    in the same unit of work; what it says followed is ``request.outcome``. ``mandatory``
    (notices only, with an approval) lets mailings of the notice reach customers who
    unsubscribed."""
    if decision not in DECISIONS:
        raise RuleViolation(_("Unknown decision."), field="decision")
    comment = comment.strip()
    if decision in (SignoffStatus.REJECTED, SignoffStatus.CHANGES_REQUESTED) and not comment:
        raise RuleViolation(_("Say why: a comment is required to reject or request changes."),
                            field="comment")
    request = db.session.get(SignoffRequest, request_id)
    if request is None:
        raise RuleViolation(_("No such sign-off request."))
    if mandatory and (decision != SignoffStatus.APPROVED
                      or request.subject_type not in MANDATORY_SUBJECTS):
        raise RuleViolation(_("Only an approved notice can be marked mandatory."),
                            field="mandatory")
    reason = may_decide(request, actor)
    if reason and request.status != SignoffStatus.PENDING:
        raise RuleViolation(reason)
    if reason:
        raise Refusal(reason, action="signoff.decision.refused", subject_type="signoff",
                      subject_id=request.id, status=403,
                      summary=N_("Decision (%(decision)s) on sign-off %(id)d refused: %(why)s",
                                 decision=term("signoff_status", decision), id=request.id,
                                 why=term("signoff_refusal", _why_not(request, actor))),
                      details={"decision": decision, "why": _why_not(request, actor)},
                      actor=actor)
    result = db.session.execute(
        update(SignoffRequest)
        .where(SignoffRequest.id == request_id, SignoffRequest.status == SignoffStatus.PENDING)
        .values(status=decision, decided_by_id=actor.id, decided_at=utcnow(),
                comment=comment or None, mandatory=mandatory)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise RuleViolation(_("This request has already been decided."))
    db.session.refresh(request)
    audit.record(f"signoff.{decision}", "signoff", request.id,
                 N_("Sign-off decided (%(decision)s): %(subject)s",
                    decision=term("signoff_status", decision), subject=_subject(request)),
                 before={"status": SignoffStatus.PENDING}, after=request.audit_state(), actor=actor)
    handler = _HANDLERS.get(request.subject_type)
    request.outcome = handler(request, actor) if handler else None
    signals.decided.send(request, actor=actor)
    return request


def void_scope(scope: str, reason: str, *, actor: User | None,
               keep_subject_ids: set[int] | frozenset[int] = frozenset()) -> int:
    """Void the open and granted requests of a changed subject (the caller commits);
    ``reason`` is one of ``models.VOID_REASONS``."""
    requests = db.session.scalars(select(SignoffRequest).where(
        SignoffRequest.scope == scope, SignoffRequest.status.in_(STANDING))).all()
    count = 0
    for request in requests:
        if request.subject_id in keep_subject_ids:
            continue
        before = request.status
        request.status = SignoffStatus.VOIDED
        request.void_reason = reason
        audit.record("signoff.void", "signoff", request.id,
                     N_("Sign-off voided (%(reason)s): %(subject)s",
                        reason=term("signoff_void", reason), subject=_subject(request)),
                     before={"status": before}, after=request.audit_state(), actor=actor)
        count += 1
    return count


def granted(subject_type: str, subject_id: int) -> SignoffRequest | None:
    return db.session.scalar(select(SignoffRequest).where(
        SignoffRequest.subject_type == subject_type, SignoffRequest.subject_id == subject_id,
        SignoffRequest.status == SignoffStatus.APPROVED))


def latest(subject_type: str, subject_id: int) -> SignoffRequest | None:
    return db.session.scalar(select(SignoffRequest).where(
        SignoffRequest.subject_type == subject_type, SignoffRequest.subject_id == subject_id,
    ).order_by(SignoffRequest.id.desc()).limit(1))


def check_binding(request: SignoffRequest, snapshot: Any) -> bool:
    """Whether the grant covers exactly this content: same hash as the approved snapshot."""
    return snapshot_hash(audit.normalise(snapshot)) == request.snapshot_hash


def queue(subject_type: str | None = None) -> list[SignoffRequest]:
    stmt = select(SignoffRequest).where(SignoffRequest.status == SignoffStatus.PENDING)
    if subject_type:
        stmt = stmt.where(SignoffRequest.subject_type == subject_type)
    return list(db.session.scalars(stmt.order_by(SignoffRequest.requested_at)))


def overdue_retroactive() -> list[SignoffRequest]:
    return [r for r in queue() if r.overdue]
