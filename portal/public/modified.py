"""When what a public page shows last changed: its Last-Modified, and through it its ETag
(``cache.static_etag``: the time and the body's length, as nginx builds it for the snapshot's
files). Every change a page shows must move this time; otherwise an edit that keeps the length
(a typo fixed in an event's public title) would keep the ETag, and readers' browsers and
proxies would be told "304, not modified" and keep the old page."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from portal.events.models import Event
from portal.extensions import db
from portal.notices.models import Notice, NoticePdf


def _latest(*times: datetime | None) -> datetime | None:
    known = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times if t is not None]
    return max(known, default=None)


def notice_page(notice: Notice) -> datetime | None:
    """A notice page shows its published version (or its withdrawal), the event's public
    title and settings, and a link to the PDF once it is rendered."""
    pdf_done = db.session.scalar(select(func.max(NoticePdf.finished_at)).where(
        NoticePdf.version_id == notice.published_version_id, NoticePdf.kind == "signed"))
    return _latest(notice.last_published_at, notice.withdrawn_at,
                   notice.event.public_changed_at, pdf_done)


def notice_list(event_id: int | None = None) -> datetime | None:
    """The list shows the public notices and every such event's public title (its filter):
    the latest publication or withdrawal of a public notice (a hidden one leaves the list,
    which is a change too) and the latest change to any event's public side."""
    notices = select(func.max(Notice.last_published_at), func.max(Notice.withdrawn_at)).where(
        Notice.audience == "public")
    if event_id:
        notices = notices.where(Notice.event_id == event_id)
    published, withdrawn = db.session.execute(notices).one()
    return _latest(published, withdrawn,
                   db.session.scalar(select(func.max(Event.public_changed_at))))
