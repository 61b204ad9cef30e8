"""Canned replies: texts an admin writes once, in both languages, for agents to start a
reply to a customer from. They use the placeholders of mailing greetings, checked by the same
code (``portal.placeholders``) when saved and filled in with the case when picked. Retired
ones stay (the trail and old replies name them) but are no longer offered."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select

from portal import placeholders
from portal.accounts import User
from portal.audit import services as audit
from portal.cases.models import CannedReply, Case
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_
from portal.models import utcnow

TITLE_MAX = 120
BODY_MAX = 5000


@dataclass
class CannedInput:
    title: str
    body_zh: str
    body_en: str


def _clean(data: CannedInput) -> dict[str, str]:
    title = (data.title or "").strip()
    if not title or len(title) > TITLE_MAX:
        raise RuleViolation(_("Give the reply a title (at most %(n)d characters).", n=TITLE_MAX),
                            field="title")
    values = {"title": title}
    for field in ("body_zh", "body_en"):
        body = (getattr(data, field) or "").strip()
        if not body:
            raise RuleViolation(_("Write the reply in both languages."), field=field)
        if len(body) > BODY_MAX:
            raise RuleViolation(_("The text is too long (at most %(n)d characters).",
                                  n=BODY_MAX), field=field)
        try:
            values[field] = placeholders.check(body)
        except placeholders.PlaceholderError as err:
            raise RuleViolation(err.message or "", field=field) from None
    return values


def offered() -> list[CannedReply]:
    """What the reply form offers: the replies not retired, by title."""
    return list(db.session.scalars(select(CannedReply).where(CannedReply.retired_at.is_(None))
                                   .order_by(CannedReply.title, CannedReply.id)))


def every() -> list[CannedReply]:
    return list(db.session.scalars(select(CannedReply).order_by(
        CannedReply.retired_at.is_not(None), CannedReply.title, CannedReply.id)))


def create(data: CannedInput, *, actor: User) -> CannedReply:
    reply = CannedReply(**_clean(data), created_by_id=actor.id)
    db.session.add(reply)
    db.session.flush()
    audit.record("canned_reply.create", "canned_reply", reply.id,
                 N_("Canned reply #%(id)d created", id=reply.id),
                 after=reply.audit_state(), actor=actor)
    return reply


def update(reply: CannedReply, data: CannedInput, *, actor: User) -> bool:
    if reply.retired:
        raise RuleViolation(_("A retired reply can no longer be edited."))
    values = _clean(data)
    if all(getattr(reply, key) == value for key, value in values.items()):
        return False
    before = reply.audit_state()
    for key, value in values.items():
        setattr(reply, key, value)
    reply.updated_at = utcnow()
    db.session.flush()
    audit.record("canned_reply.edit", "canned_reply", reply.id,
                 N_("Canned reply #%(id)d edited", id=reply.id),
                 before=before, after=reply.audit_state(),
                 actor=actor)
    return True


def retire(reply: CannedReply, *, actor: User) -> None:
    if reply.retired:
        raise RuleViolation(_("This reply is already retired."))
    before = reply.audit_state()
    reply.retired_at = utcnow()
    db.session.flush()
    audit.record("canned_reply.retire", "canned_reply", reply.id,
                 N_("Canned reply #%(id)d retired", id=reply.id),
                 before=before, after=reply.audit_state(),
                 actor=actor)


def fill(reply: CannedReply, case: Case) -> str:
    """The reply in the customer's language, filled in with the case (the agent reads and
    may change it before sending); PlaceholderError when it cannot be filled in."""
    customer = case.customer
    template = placeholders.Template(reply.body_for(customer.locale))
    return template.render({
        "name": customer.name, "company": customer.company or "", "case_ref": case.ref,
        "case_amount": placeholders.format_amount(case.approved_amount or case.amount,
                                                  case.currency)})
