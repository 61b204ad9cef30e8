"""Who is told what, and the e-mail that tells them.

A change that concerns a staff member (a sign-off they may decide, a decision on their
request, a case given to them) writes a row per recipient in the change's own transaction;
a job then e-mails each recipient's waiting rows as one message, in the recipient's language.
Nobody is e-mailed about their own action, and nobody who switched the e-mails off in their
profile (checked when the row is written and again when it goes out). The messages name refs
and titles only, never a customer's personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, render_template
from flask_babel import force_locale, format_datetime, ngettext
from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from portal import uow
from portal.accounts import Role, User
from portal.cases.models import Case
from portal.extensions import db
from portal.models import utcnow
from portal.notifications.models import Notification, NotificationKind, NotificationStatus
from portal.signoffs.models import STATUS_LABELS, SUBJECT_LABELS, SignoffRequest

# These wait for the digest window; the others are due at once.
DIGESTED = (NotificationKind.SIGNOFF_REQUESTED,)


def _wants_mail(user: User | None, actor: User | None) -> bool:
    return (user is not None and user.active and user.notify_by_email
            and (actor is None or user.id != actor.id))


def _add(recipient: User, kind: NotificationKind, subject_id: int,
         actor: User | None) -> Notification:
    row = Notification(recipient_id=recipient.id, kind=kind, subject_id=subject_id,
                       actor_id=actor.id if actor else None, status=NotificationStatus.PENDING,
                       created_at=utcnow())
    db.session.add(row)
    return row


def signoff_requested(request: SignoffRequest) -> list[Notification]:
    """Every active legal reviewer who may decide it: not its requester, not its author."""
    reviewers = db.session.scalars(select(User).where(
        User.role == Role.LEGAL, User.active.is_(True),
        User.id.not_in([i for i in (request.requested_by_id, request.author_id) if i]))
        .order_by(User.id))
    rows = [_add(user, NotificationKind.SIGNOFF_REQUESTED, request.id, request.requested_by)
            for user in reviewers if _wants_mail(user, request.requested_by)]
    db.session.flush()
    return rows


def signoff_decided(request: SignoffRequest, actor: User) -> list[Notification]:
    """Whoever asked for the sign-off."""
    requester = request.requested_by
    if not _wants_mail(requester, actor):
        return []
    row = _add(requester, NotificationKind.SIGNOFF_DECIDED, request.id, actor)
    db.session.flush()
    return [row]


def case_assigned(case: Case, actor: User | None) -> list[Notification]:
    """The new assignee, unless they assigned it to themselves."""
    if not _wants_mail(case.assignee, actor):
        return []
    row = _add(case.assignee, NotificationKind.CASE_ASSIGNED, case.id, actor)
    db.session.flush()
    return [row]


def customer_wrote(case: Case) -> list[Notification]:
    """The case's assignee: its customer wrote on their page (nobody when unassigned; the
    case list shows it to every agent)."""
    if not _wants_mail(case.assignee, None):
        return []
    row = _add(case.assignee, NotificationKind.CUSTOMER_MESSAGE, case.id, None)
    db.session.flush()
    return [row]


# --- delivery ------------------------------------------------------------------------------


def due_recipients(now: datetime | None = None) -> list[int]:
    """Recipients with a row due: one not digested, or a digested one past the window."""
    now = now or utcnow()
    window = timedelta(seconds=float(current_app.config["NOTIFY_DIGEST_SECONDS"]))
    return list(db.session.scalars(select(Notification.recipient_id).where(
        Notification.status == NotificationStatus.PENDING,
        or_(Notification.kind.not_in(DIGESTED), Notification.created_at <= now - window))
        .distinct().order_by(Notification.recipient_id)))


def claim(recipient_id: int) -> list[Notification]:
    """Take every waiting row of the recipient (committed at once, so a second job finds
    nothing to send); the rows this claim took, oldest first."""
    now = utcnow()
    db.session.execute(
        update(Notification).where(Notification.recipient_id == recipient_id,
                                   Notification.status == NotificationStatus.PENDING)
        .values(status=NotificationStatus.SENDING, claimed_at=now,
                attempts=Notification.attempts + 1)
        .execution_options(synchronize_session=False))
    uow.commit()  # the claim, before the message goes out: a second run finds it taken
    return list(db.session.scalars(select(Notification).where(
        Notification.recipient_id == recipient_id,
        Notification.status == NotificationStatus.SENDING, Notification.claimed_at == now)
        .order_by(Notification.id)))


def recover_stalled(now: datetime | None = None) -> int:
    """Rows a dead worker left ``sending`` past the lease wait again (sent again, in doubt,
    with the same Message-ID when the batch is the same)."""
    now = now or utcnow()
    lease = timedelta(seconds=float(current_app.config["MAILING_LEASE_SECONDS"]))
    return db.session.execute(
        update(Notification).where(Notification.status == NotificationStatus.SENDING,
                                   Notification.claimed_at < now - lease)
        .values(status=NotificationStatus.PENDING, claimed_at=None,
                error="in doubt: the worker stopped while sending; sent again")
        .execution_options(synchronize_session=False)).rowcount


@dataclass
class Item:
    """One line of the message and the page it points to."""

    text: str
    url: str


def _link(path: str) -> str:
    return current_app.config["PORTAL_BASE_URL"].rstrip("/") + path


def _item(row: Notification) -> Item | None:
    """The line for one row, in the current language (None when its subject is gone)."""
    actor = row.actor.name if row.actor else _("the system")
    if row.kind == NotificationKind.CASE_ASSIGNED:
        case = db.session.get(Case, row.subject_id)
        if case is None:
            return None
        return Item(_("Case %(ref)s was assigned to you by %(who)s; due %(due)s.", ref=case.ref,
                      who=actor, due=format_datetime(case.due_at, "short")),
                    _link(f"/cases/{case.id}"))
    if row.kind == NotificationKind.CUSTOMER_MESSAGE:
        case = db.session.get(Case, row.subject_id)
        if case is None:
            return None
        return Item(_("The customer wrote on case %(ref)s; due %(due)s.", ref=case.ref,
                      due=format_datetime(case.due_at, "short")),
                    _link(f"/cases/{case.id}#conversation"))
    request = db.session.get(SignoffRequest, row.subject_id)
    if request is None:
        return None
    what = SUBJECT_LABELS.get(request.subject_type, request.subject_type)
    if row.kind == NotificationKind.SIGNOFF_REQUESTED:
        text = _("%(who)s asks for your sign-off (%(what)s): %(title)s", who=actor, what=what,
                 title=request.title)
    else:
        text = _("%(who)s decided your sign-off request (%(what)s): %(decision)s — %(title)s",
                 who=actor, what=what, title=request.title,
                 decision=STATUS_LABELS.get(request.status, request.status))
    return Item(text, _link(f"/signoffs/{request.id}"))


def compose(user: User, rows: list[Notification]) -> tuple[str, str]:
    """The subject and text for ``rows``, in the recipient's language."""
    locale = user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]
    with force_locale(locale):
        items = [item for item in map(_item, rows) if item is not None]
        requests = sum(1 for r in rows if r.kind == NotificationKind.SIGNOFF_REQUESTED)
        if len(items) == 1:
            subject = items[0].text
        elif requests == len(rows):
            subject = ngettext("%(num)d sign-off awaits your decision",
                               "%(num)d sign-offs await your decision", requests)
        else:
            subject = ngettext("%(num)d update on your work", "%(num)d updates on your work",
                               len(items))
        text = render_template("notifications/email.txt", user=user, items=items,
                               profile=_link("/profile"))
    return "Aftercare: " + subject, text
