"""The top of the dashboard, per person: what waits for the signed-in member of staff, and
the count the navigation shows beside "Dashboard".

- an agent: their open cases due today or overdue, their replies not delivered yet (queued
  or failed), the customer imports they uploaded that wait for their confirmation, and the
  claims waiting in the triage queue (everyone's: any agent may decide them);
- legal: the sign-off requests they may decide, oldest first, with their age;
- an admin: missed response targets of open events, retroactive reviews past 24 hours and
  events under review whose post-mortem is not signed off yet;
- finance: the payout batches someone else prepared, which they may release.

Which lists a person sees follows from what their role may do (the same rules as the pages
the items link to), so the template only draws the sections it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from flask import g
from flask_babel import get_timezone
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import func, literal_column, or_, select

from portal.accounts import Role, User
from portal.cases import rules, triage
from portal.cases.claim_models import Claim
from portal.cases.models import LABELS as CASE_LABELS
from portal.cases.models import Case, CaseNote, ReplyStatus
from portal.centre import services as command_centre
from portal.customers.models import ImportBatch, ImportStatus
from portal.events.models import TARGET_METRICS, Event, EventStatus
from portal.extensions import db
from portal.i18n import user_text
from portal.models import utcnow
from portal.payouts.models import BatchStatus, PayoutBatch
from portal.postmortems import services as postmortems
from portal.postmortems.models import Postmortem
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest, SignoffStatus

LIMIT = 20
WAITING_REPLIES = (ReplyStatus.QUEUED, ReplyStatus.FAILED)


@dataclass
class Item:
    """One line: its text, the page it links to (``url_for(endpoint, **args)``), when it is
    due or happened (``at``), and a short note (a status)."""

    text: Markup  # what people typed marked (``user_text``), for the page
    endpoint: str
    args: dict[str, object]
    at: datetime | None = None
    note: str = ""
    late: bool = False
    # How long it has waited (sign-offs), shown instead of ``at``.
    age: timedelta | None = None


@dataclass
class Section:
    key: str
    title: str
    empty: str
    items: list[Item] = field(default_factory=list)
    # Where the whole list is, when there may be more than LIMIT.
    more_endpoint: str | None = None
    more_args: dict[str, object] = field(default_factory=dict)


@dataclass
class MyWork:
    sections: list[Section]

    @property
    def count(self) -> int:
        return sum(len(s.items) for s in self.sections)

    def has(self, key: str) -> bool:
        return any(s.key == key for s in self.sections)


def end_of_today() -> datetime:
    """Midnight at the end of today in the portal's time zone, in UTC."""
    zone = get_timezone()
    local_today = utcnow().astimezone(zone).date()
    return datetime.combine(local_today + timedelta(days=1), time(0), zone).astimezone(
        utcnow().tzinfo)


# --- the queries, each also counted for the navigation ----------------------------------------


def _due_cases(user: User) -> object:
    return select(Case).where(Case.assignee_id == user.id,
                              Case.status.in_(rules.OPEN_BEFORE_PAYMENT),
                              Case.due_at < end_of_today())


def _waiting_replies(user: User) -> object:
    return select(CaseNote).join(Case, Case.id == CaseNote.case_id).where(
        Case.assignee_id == user.id, CaseNote.kind == "reply",
        CaseNote.mail_status.in_(WAITING_REPLIES))


def _imports_to_confirm(user: User) -> object:
    return select(ImportBatch).where(ImportBatch.uploaded_by_id == user.id,
                                     ImportBatch.status == ImportStatus.VALIDATED)


def _decidable(user: User) -> object:
    """Pending requests this reviewer may decide: neither asked for nor written by them."""
    return select(SignoffRequest).where(
        SignoffRequest.status == SignoffStatus.PENDING,
        or_(SignoffRequest.requested_by_id.is_(None), SignoffRequest.requested_by_id != user.id),
        or_(SignoffRequest.author_id.is_(None), SignoffRequest.author_id != user.id))


def _releasable(user: User) -> object:
    """Prepared payout batches this finance user may release: someone else prepared them."""
    return select(PayoutBatch).where(PayoutBatch.status == BatchStatus.PREPARED,
                                     PayoutBatch.prepared_by_id != user.id)


def _count(stmt: object) -> int:
    return db.session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0


def _postmortems_outstanding() -> list[Event]:
    """Events under review whose post-mortem is missing or not signed off."""
    events = db.session.scalars(select(Event).where(Event.status == EventStatus.REVIEWING)
                                .order_by(Event.created_at))
    found = []
    for event in events:
        postmortem = db.session.scalar(select(Postmortem).where(Postmortem.event_id == event.id))
        if postmortem is None or signoffs.granted(postmortems.SUBJECT, postmortem.id) is None:
            found.append(event)
    return found


# --- the sections ------------------------------------------------------------------------------


def _agent_sections(user: User) -> list[Section]:
    now = utcnow()
    cases = Section("cases", str(_l("My cases due today or overdue")),
                    str(_l("Nothing of yours is due today.")), more_endpoint="cases.index",
                    more_args={"assignee": user.id, "sort": "due"})
    for case in db.session.scalars(_due_cases(user).order_by(Case.due_at, Case.id).limit(LIMIT)):
        cases.items.append(Item(user_text(f"{case.ref} · {case.order_ref}"), "cases.detail",
                                {"case_id": case.id}, case.due_at,
                                str(_l("overdue")) if case.due_at < now else str(_l("due today")),
                                late=case.due_at < now))
    replies = Section("replies", str(_l("My replies not delivered yet")),
                      str(_l("Every reply on your cases has gone out.")))
    for note in db.session.scalars(_waiting_replies(user).order_by(CaseNote.id).limit(LIMIT)):
        failed = note.mail_status == ReplyStatus.FAILED
        replies.items.append(Item(note.case.ref, "cases.detail", {"case_id": note.case_id},
                                  note.created_at,
                                  str(_l("not delivered")) if failed else str(_l("queued")),
                                  late=failed))
    imports = Section("imports", str(_l("My imports to confirm")),
                      str(_l("No import waits for your confirmation.")))
    for batch in db.session.scalars(_imports_to_confirm(user).order_by(ImportBatch.id)
                                    .limit(LIMIT)):
        imports.items.append(Item(user_text(batch.filename), "customers.import_status",
                                  {"batch_id": batch.id}, batch.created_at,
                                  str(_l("%(n)d valid rows", n=batch.valid_rows))))
    claims = Section("claims", str(_l("Claims waiting for triage")),
                     str(_l("No claim waits for triage.")), more_endpoint="triage.index")
    for claim in db.session.scalars(triage.waiting().limit(LIMIT)):
        claims.items.append(Item(_claim_text(claim), "triage.detail", {"claim_id": claim.id},
                                 claim.confirmed_at, str(CASE_LABELS[claim.kind])))
    return [cases, replies, imports, claims]


def _claim_text(claim: Claim) -> Markup:
    who = claim.customer.name if claim.customer else claim.name
    return user_text(f"#{claim.id} · {who} · {claim.order_ref}")


def _legal_sections(user: User) -> list[Section]:
    queue = Section("signoffs", str(_l("Sign-offs you may decide, oldest first")),
                    str(_l("The queue is empty.")), more_endpoint="signoffs.queue")
    for request in db.session.scalars(_decidable(user).order_by(
            SignoffRequest.requested_at, SignoffRequest.id).limit(LIMIT)):
        queue.items.append(Item(request.heading_html, "signoffs.detail", {"request_id": request.id},
                                request.requested_at, age=request.age, late=request.overdue))
    return [queue]


def _admin_sections() -> list[Section]:
    targets = Section("missed_targets", str(_l("Missed response targets")),
                      str(_l("No open event has missed a response target.")))
    for event, status in command_centre.missed_targets():
        targets.items.append(Item(user_text(event.title), "centre.detail", {"event_id": event.id},
                                  status.deadline,
                                  str(TARGET_METRICS.get(status.metric, status.metric)),
                                  late=True))
    reviews = Section("overdue_reviews", str(_l("Overdue reviews and open post-mortems")),
                      str(_l("No retroactive review or post-mortem is overdue.")))
    for request in signoffs.overdue_retroactive():
        reviews.items.append(Item(request.heading_html, "signoffs.detail",
                                  {"request_id": request.id},
                                  request.requested_at, str(_l("retroactive review")),
                                  age=request.age, late=True))
    for event in _postmortems_outstanding():
        reviews.items.append(Item(user_text(event.title), "postmortems.detail",
                                  {"event_id": event.id},
                                  event.created_at, str(_l("post-mortem not signed off"))))
    return [targets, reviews]


def _finance_sections(user: User) -> list[Section]:
    batches = Section("payout_batches", str(_l("Payout batches waiting for your release")),
                      str(_l("No payout batch waits for your release.")),
                      more_endpoint="payouts.index")
    for batch in db.session.scalars(_releasable(user).order_by(PayoutBatch.prepared_at,
                                                               PayoutBatch.id).limit(LIMIT)):
        batches.items.append(Item(escape(f"{batch.ref} · {batch.control_sum} {batch.currency}"),
                                  "payouts.batch", {"payout_batch_id": batch.id},
                                  batch.prepared_at,
                                  str(_l("%(n)d cases", n=batch.line_count))))
    return [batches]


def for_user(user: User) -> MyWork:
    if user.role == Role.FINANCE:
        return MyWork(_finance_sections(user))
    if user.role == Role.LEGAL:
        return MyWork(_legal_sections(user))
    if user.role == Role.ADMIN:
        return MyWork(_admin_sections())
    return MyWork(_agent_sections(user))


NAV_CAP = 99  # the navigation shows "99+" above this


def _count_upto(stmt: object) -> int:
    """COUNT that stops after NAV_CAP + 1 rows: on every staff page, an agent with 250,000
    due cases (the case-list benchmark at a million) costs 30 ms to count in full."""
    rows = stmt.with_only_columns(literal_column("1")).order_by(None).limit(NAV_CAP + 1)
    return db.session.scalar(select(func.count()).select_from(rows.subquery())) or 0


def count_for(user: User) -> int:
    """The navigation's number (NAV_CAP + 1 means more): a few bounded COUNT queries, the
    same lists as :func:`for_user`."""
    if user.role == Role.FINANCE:
        return _count_upto(_releasable(user))
    if user.role == Role.LEGAL:
        return _count_upto(_decidable(user))
    if user.role == Role.ADMIN:
        return (len(command_centre.missed_targets()) + len(signoffs.overdue_retroactive())
                + len(_postmortems_outstanding()))
    return min(NAV_CAP + 1, _count_upto(_due_cases(user)) + _count_upto(_waiting_replies(user))
               + _count_upto(_imports_to_confirm(user)) + triage.waiting_count())


def nav_count() -> int | None:
    """For the navigation of signed-in staff: computed once per request, on first use."""
    if not current_user.is_authenticated:
        return None
    if "my_work_count" not in g:
        g.my_work_count = count_for(current_user)
    return g.my_work_count
