"""What the mailings add to a customer's timeline (``customers.people``): every notice mailed
to them, with how it fared."""

from __future__ import annotations

from sqlalchemy import select

from portal.customers.people import Entry
from portal.extensions import db
from portal.i18n import N_
from portal.mailings.models import RECIPIENT_LABELS, Mailing, MailingRecipient
from portal.notices.models import Notice, NoticeVersion


def entries(customer_ids: list[int]) -> list[Entry]:
    found = []
    rows = db.session.execute(
        select(MailingRecipient, Mailing, Notice, NoticeVersion)
        .join(Mailing, Mailing.id == MailingRecipient.mailing_id)
        .join(Notice, Notice.id == Mailing.notice_id)
        .join(NoticeVersion, NoticeVersion.id == Mailing.version_id)
        .where(MailingRecipient.customer_id.in_(customer_ids)))
    for recipient, mailing, notice, version in rows:
        _locale, content = version.in_locale(recipient.locale)
        found.append(Entry(
            recipient.sent_at or mailing.started_at or mailing.created_at, "mailing",
            N_("Notice %(ref)s v%(number)s mailed: %(title)s", ref=notice.ref,
               number=version.number, title=content["title"]).html(), recipient.customer_id,
            str(RECIPIENT_LABELS.get(recipient.status, recipient.status)), "mailings.detail",
            {"mailing_id": mailing.id}))
    return found
