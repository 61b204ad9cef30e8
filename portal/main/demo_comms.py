"""Demo data of the update cadence: the demo incident's communications lead, and a short
history behind its figures on the communication metrics page (opened three hours ago, its
notice reviewed by legal and published 25 minutes later, its first mailing an hour after
opening). The last update is then older than the sev1 cadence, so the event page and the
dashboard show the update as overdue and the first run of the cadence job e-mails the lead."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from portal.accounts import Role, User
from portal.comms import services as comms
from portal.events.models import Event
from portal.extensions import db
from portal.mailings.models import Mailing
from portal.models import utcnow
from portal.notices.models import Notice, Publication
from portal.signoffs.models import SignoffRequest

OPENED_AGO = timedelta(hours=3)
REVIEW_REQUESTED = timedelta(minutes=10)  # after opening
PUBLISHED = timedelta(minutes=25)
MAILED = timedelta(minutes=60)


def seed_comms(event: Event, users: dict[Role, User]) -> None:
    comms.set_lead(event, users[Role.AGENT].id, actor=users[Role.ADMIN])
    opened = utcnow() - OPENED_AGO
    event.created_at = opened
    notices = select(Notice.id).where(Notice.event_id == event.id)
    first = db.session.scalar(select(Publication).where(Publication.notice_id.in_(notices))
                              .order_by(Publication.id))
    if first is not None:
        first.published_at = opened + PUBLISHED
        db.session.execute(update(Notice).where(Notice.id == first.notice_id).values(
            first_published_at=opened + PUBLISHED, last_published_at=opened + PUBLISHED))
        if first.signoff_id is not None:
            db.session.execute(update(SignoffRequest).where(
                SignoffRequest.id == first.signoff_id).values(
                requested_at=opened + REVIEW_REQUESTED, decided_at=opened + PUBLISHED))
    db.session.execute(update(Mailing).where(Mailing.event_id == event.id,
                                             Mailing.started_at.is_not(None))
                       .values(started_at=opened + MAILED))
    db.session.flush()
