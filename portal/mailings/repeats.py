"""A mailing of a version its audience already received: how many of the recipients got it
before and when, so that sending it again is a decision and not an accident."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import format_datetime, format_number, ngettext
from sqlalchemy import func, select

from portal.extensions import db
from portal.mailings.audience import Audience, audience_members, skip_reason
from portal.mailings.models import (
    OPEN_RECIPIENT_STATUSES,
    Mailing,
    MailingRecipient,
    RecipientStatus,
)

# The start form's checkbox that confirms sending a version again.
CONFIRM_FIELD = "repeat_confirmed"
# A recipient row that got the message, or will unless its mailing is cancelled.
REACHED = (RecipientStatus.SENT, *OPEN_RECIPIENT_STATUSES)


@dataclass(frozen=True)
class RepeatSend:
    """``already`` of the ``to_send`` recipients received this version before, the latest of
    them at ``last_sent_at``."""

    already: int
    to_send: int
    last_sent_at: datetime | None

    @property
    def message(self) -> str:
        return ngettext(
            "This version was already sent to %(already)s of %(total)s recipient on %(date)s. "
            "Send it again?",
            "This version was already sent to %(already)s of these %(total)s recipients on "
            "%(date)s. Send it again?",
            self.to_send, already=format_number(self.already),
            total=format_number(self.to_send),
            date=format_datetime(self.last_sent_at, "short") if self.last_sent_at else "—")


def earlier_recipients(mailing: Mailing) -> dict[int, datetime | None]:
    """Customers another mailing of the same version reached or is about to reach (sent, or
    still waiting in a mailing under way), with when: sent, or else when that mailing
    started."""
    when = func.coalesce(MailingRecipient.sent_at, Mailing.started_at)
    rows = db.session.execute(
        select(MailingRecipient.customer_id, func.max(when))
        .join(Mailing, Mailing.id == MailingRecipient.mailing_id)
        .where(Mailing.version_id == mailing.version_id, Mailing.id != mailing.id,
               MailingRecipient.status.in_(REACHED))
        .group_by(MailingRecipient.customer_id))
    return {customer_id: sent_at for customer_id, sent_at in rows}


class RepeatCounter:
    """Counts, recipient by recipient, who would receive the version again."""

    def __init__(self, mailing: Mailing) -> None:
        self.earlier = earlier_recipients(mailing)
        self.to_send = self.already = 0
        self.last_sent_at: datetime | None = None

    def add(self, customer_id: int) -> None:
        self.to_send += 1
        if customer_id in self.earlier:
            self.already += 1
            sent_at = self.earlier[customer_id]
            if sent_at and (self.last_sent_at is None or sent_at > self.last_sent_at):
                self.last_sent_at = sent_at

    def result(self) -> RepeatSend | None:
        """None when nobody would get the version twice."""
        if not self.already:
            return None
        return RepeatSend(self.already, self.to_send, self.last_sent_at)


def repeat_of(mailing: Mailing, mandatory: bool) -> RepeatSend | None:
    """For a draft: who of its audience, as it stands now, already received its version."""
    counter = RepeatCounter(mailing)
    if not counter.earlier:
        return None
    for customer in audience_members(mailing.event_id, Audience.from_dict(mailing.audience)):
        if skip_reason(customer, mandatory) is None:
            counter.add(customer.id)
    return counter.result()
