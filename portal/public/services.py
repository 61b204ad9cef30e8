"""What a verification code was issued for (``/verify``): a published notice version, or one
mailing's message. Public: the answer names the notice and its official text, and for a
message only the date it was sent — never to whom, nor anything personal in it.

Codes are made in ``portal.verification`` and stored where they are issued (the publication,
the mailing recipient), each column unique, so a lookup is one or two indexed queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from portal import verification
from portal.extensions import db
from portal.mailings.models import Mailing, MailingRecipient, RecipientStatus
from portal.notices.models import Notice, NoticeStatus, NoticeVersion, Publication


@dataclass(frozen=True)
class Issued:
    """A genuine code: ``kind`` is "version" (a notice page, its PDF) or "message" (one
    e-mail); ``sent_at`` is the message's sending time, ``published_at`` the version's."""

    kind: str
    code: str
    notice: Notice
    version: NoticeVersion
    published_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def withdrawn(self) -> bool:
        return self.notice.status == NoticeStatus.WITHDRAWN

    @property
    def superseded(self) -> bool:
        """A newer version of the notice was published since (the code stays genuine)."""
        return (not self.withdrawn and self.notice.published_version_id is not None
                and self.notice.published_version_id != self.version.id)

    @property
    def has_public_page(self) -> bool:
        return self.notice.publicly_visible and not self.withdrawn


def find(code: str) -> Issued | None:
    """The issue of a canonical code (see ``verification.normalise``), or None: not ours."""
    publication = db.session.scalar(
        select(Publication).where(Publication.verification_code == code))
    if publication is not None:
        return Issued("version", code, publication.notice, publication.version,
                      published_at=publication.published_at)
    row = db.session.execute(
        select(MailingRecipient.mailing_id, MailingRecipient.status, MailingRecipient.attempts,
               MailingRecipient.sent_at)
        .where(MailingRecipient.verification_code == code)).first()
    # A message never tried (skipped, cancelled before its turn) never left us: its code can
    # be in nobody's hands, so it is not vouched for.
    if row is None or (row.status != RecipientStatus.SENT and not row.attempts):
        return None
    mailing = db.session.get(Mailing, row.mailing_id)
    return Issued("message", code, mailing.notice, mailing.version, sent_at=row.sent_at)


def look_up(text: str | None) -> tuple[str | None, Issued | None]:
    """The canonical form of what the reader typed (None: it cannot be a code) and what the
    code was issued for (None: not ours)."""
    code = verification.normalise(text)
    return code, (find(code) if code else None)
