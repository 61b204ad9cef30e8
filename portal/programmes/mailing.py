"""A programme's mailings, through the mailing machinery (``portal.mailings``).

The programme offers the mailings an audience kind, ``"programme"`` (registered in
``portal.wiring``), whose ``args`` name the programme and which of its members:

- ``launch``: members whose case exists under the programme (created or accepted);
- ``reminder``: opt-in members who have not accepted yet (above the low-value threshold, who
  are paid without asking), with the reminder's ``days`` before the deadline;
- ``recontact``: members unclaimed because they had no address or their mail bounced, who
  have an address now (the customer record was corrected).

The message is an ordinary mailing: the text is a notice version legal approved (checked by
``mailings.compose.sendable_grant`` when drafted, started and resumed), so whatever legal
approved is exactly what customers receive; the staff-written greeting adds the member's
amount (in the customer's language), the deadline and the personal page link
(``placeholders.FIELDS``). The terms legal signed off with the programme are shown on the
customer's page, where they accept.

What a mailing tells (``mailings.signals``) moves the members: a delivered message sets
``notified_at`` (and brings a re-contacted member back from unclaimed); no address or a bounce
marks the member unclaimed (``unclaimed.mark_unclaimed``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, or_, select, update

from portal.accounts import User
from portal.audit import services as audit
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, reader_locale
from portal.mailings import services as mailings
from portal.mailings.audience import Audience, AudienceKind
from portal.mailings.models import Mailing, MailingStatus
from portal.models import utcnow
from portal.programmes.models import MemberStatus, Programme, ProgrammeMember, ProgrammeStatus
from portal.programmes.unclaimed import mark_unclaimed

KIND = "programme"
LAUNCH, REMINDER, RECONTACT = "launch", "reminder", "recontact"
MEMBER_SETS = (LAUNCH, REMINDER, RECONTACT)
REACHABLE_AGAIN = ("no_address", "bounced")
# While cases exist under the programme, its members may be mailed.
MAILABLE_STATUSES = (ProgrammeStatus.RUNNING,)

DEFAULT_GREETINGS = {
    "zh_CN": "尊敬的{{ name }}：\n\n根据补偿方案，您可获得 {{ amount }}。"
             "{% if deadline %}请于 {{ deadline }} 之前在您的专属页面确认接受：{% else %}"
             "详情请见您的专属页面：{% endif %}\n{{ my_url }}",
    "en": "Dear {{ name }},\n\nUnder our remediation programme you will receive {{ amount }}."
          "{% if deadline %} Please accept it on your personal page by {{ deadline }}:"
          "{% else %} See your personal page:{% endif %}\n{{ my_url }}",
}


# ------------------------------------------------------------------------- the audience kind

def _programme_id(args: dict[str, Any]) -> int:
    return int(args.get("programme") or 0)


def members_clause(programme: Programme | None, which: str) -> Any:
    """The members of ``programme`` a mailing of ``which`` set is for (a condition on
    ``ProgrammeMember``)."""
    if programme is None or which not in MEMBER_SETS:
        return ProgrammeMember.id.is_(None)
    base = and_(ProgrammeMember.programme_id == programme.id,
                ProgrammeMember.case_id.is_not(None))
    if which == LAUNCH:
        return and_(base, ProgrammeMember.status.in_((MemberStatus.CREATED,
                                                     MemberStatus.ACCEPTED)))
    if which == REMINDER:
        if programme.mode != "opt_in":
            return ProgrammeMember.id.is_(None)
        above = (ProgrammeMember.amount >= programme.low_value_threshold
                 if programme.low_value_threshold is not None else True)
        return and_(base, ProgrammeMember.status == MemberStatus.CREATED, above)
    return and_(base, ProgrammeMember.status == MemberStatus.UNCLAIMED,
                ProgrammeMember.unclaimed_reason.in_(REACHABLE_AGAIN))


def _customers(event_id: int, args: dict[str, Any]) -> Any:
    programme = db.session.get(Programme, _programme_id(args))
    if programme is None or programme.event_id != event_id:
        return Customer.id.is_(None)
    which = str(args.get("members") or "")
    chosen = Customer.id.in_(select(ProgrammeMember.customer_id)
                             .where(members_clause(programme, which)))
    if which == RECONTACT:  # only those who have an address now
        return and_(chosen, Customer.email.is_not(None), Customer.email != "")
    return chosen


def format_amount(amount: Decimal, currency: str, locale: str) -> str:
    """An amount as the customer reads it in their language (Decimal in, text out)."""
    return format_currency(amount, currency, locale=locale if locale == "en" else "zh_CN")


def format_deadline(deadline: datetime | None, locale: str) -> str:
    if deadline is None:
        return ""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return format_datetime(deadline, "medium", tzinfo=zone,
                           locale=locale if locale == "en" else "zh_CN")


def _personal(customers: Iterable[Customer], args: dict[str, Any]) -> dict[int, dict[str, str]]:
    programme = db.session.get(Programme, _programme_id(args))
    locales = {c.id: c.locale for c in customers}
    if programme is None or not locales:
        return {}
    deadline = programme.deadline if programme.mode == "opt_in" else None
    threshold = programme.low_value_threshold
    found: dict[int, dict[str, str]] = {}
    for customer_id, amount, currency in db.session.execute(
            select(ProgrammeMember.customer_id, ProgrammeMember.amount, ProgrammeMember.currency)
            .where(ProgrammeMember.programme_id == programme.id,
                   ProgrammeMember.customer_id.in_(list(locales)))):
        locale = locales[customer_id]
        asked = threshold is None or amount >= threshold  # below it: paid without asking
        found[customer_id] = {"amount": format_amount(amount, currency, locale),
                              "deadline": format_deadline(deadline, locale) if asked else ""}
    return found


def _label(args: dict[str, Any]) -> str:
    programme = db.session.get(Programme, _programme_id(args))
    name = programme.name_in(reader_locale()) if programme else "?"
    which = str(args.get("members") or "")
    labels = {LAUNCH: _("members of programme %(name)s", name=name),
              REMINDER: _("reminder %(days)s days before the deadline of programme %(name)s",
                          days=args.get("days", "?"), name=name),
              RECONTACT: _("unclaimed members of programme %(name)s who have an address now",
                           name=name)}
    return labels.get(which, name)


AUDIENCE_KIND = AudienceKind(customers=_customers, personal=_personal, label=_label)


def audience_for(programme: Programme, which: str, **extra: Any) -> Audience:
    return Audience(kind=KIND, args={"programme": programme.id, "members": which, **extra})


def programme_mailings(programme: Programme) -> list[Mailing]:
    """The mailings of this programme, newest first."""
    return [m for m in mailings.mailings_of(programme.event_id)
            if (m.audience or {}).get("kind") == KIND
            and _programme_id((m.audience or {}).get("args") or {}) == programme.id]


def launch_mailing(programme: Programme) -> Mailing | None:
    """The newest started launch mailing: reminders repeat its approved text and greeting."""
    for mailing in programme_mailings(programme):
        if (mailing.audience["args"].get("members") == LAUNCH
                and mailing.status in (MailingStatus.SENDING, MailingStatus.PAUSED,
                                       MailingStatus.DONE)):
            return mailing
    return None


# ---------------------------------------------------------------------------- drafting one

def draft_mailing(programme: Programme, which: str, data: mailings.MailingInput, *,
                  actor: User) -> Mailing:
    """A draft mailing of an approved notice version to the programme's ``which`` members
    (``launch`` or ``recontact``); staff check, test and start it on the mailing's page."""
    if programme.status not in MAILABLE_STATUSES:
        raise RuleViolation(_("The programme's cases are not created yet; it cannot be "
                              "mailed."))
    if which not in (LAUNCH, RECONTACT):
        raise RuleViolation(_("Choose whom to write to."), field="members")
    data.audience = audience_for(programme, which)
    return mailings.create_mailing(programme.event, data, actor=actor)


# ------------------------------------------------------------------- what the mailings tell

def _own(audience: dict[str, Any] | None) -> tuple[int, str] | None:
    if not audience or audience.get("kind") != KIND:
        return None
    args = audience.get("args") or {}
    return _programme_id(args), str(args.get("members") or "")


def on_delivered(_mailing_id: int, *, audience: dict[str, Any], customer_ids: list[int],
                 **_: Any) -> None:
    """A message reached these customers: their members are notified (the first time is
    kept); a re-contacted member who was unclaimed for want of an address is back."""
    own = _own(audience)
    if own is None:
        return
    programme_id, which = own
    now = utcnow()
    of_them = (ProgrammeMember.programme_id == programme_id,
               ProgrammeMember.customer_id.in_(customer_ids))
    db.session.execute(update(ProgrammeMember)
                       .where(*of_them, ProgrammeMember.notified_at.is_(None))
                       .values(notified_at=now)
                       .execution_options(synchronize_session=False))
    if which != RECONTACT:
        return
    for member_id, reason in db.session.execute(
            select(ProgrammeMember.id, ProgrammeMember.unclaimed_reason).where(
                *of_them, ProgrammeMember.status == MemberStatus.UNCLAIMED,
                ProgrammeMember.unclaimed_reason.in_(REACHABLE_AGAIN))).all():
        back = db.session.execute(
            update(ProgrammeMember)
            .where(ProgrammeMember.id == member_id,
                   ProgrammeMember.status == MemberStatus.UNCLAIMED)
            .values(status=MemberStatus.CREATED, unclaimed_reason=None, notified_at=now,
                    updated_at=now)
            .execution_options(synchronize_session=False)).rowcount
        if back == 1:
            audit.record("programme.member_recontacted", "programme_member", member_id,
                         N_("Programme member %(id)d reached again by mailing %(mailing)d; no "
                            "longer unclaimed", id=member_id, mailing=_mailing_id),
                         before={"status": MemberStatus.UNCLAIMED, "reason": reason},
                         after={"status": MemberStatus.CREATED}, actor=None)


def on_undeliverable(_mailing_id: int, *, audience: dict[str, Any], customer_ids: list[int],
                     reason: str, **_: Any) -> None:
    """No address, or the address bounced: members still waiting become unclaimed."""
    own = _own(audience)
    if own is None:
        return
    programme_id, _which = own
    member_ids = db.session.scalars(select(ProgrammeMember.id).where(
        ProgrammeMember.programme_id == programme_id,
        ProgrammeMember.customer_id.in_(customer_ids),
        or_(ProgrammeMember.status == MemberStatus.CREATED))).all()
    mark_unclaimed(member_ids, reason)
