"""What a verification code was issued for (``/verify``): a published notice version, one
mailing's message, or a printed letter (found by a higher domain's finder, ``add_finder``).
Public: the answer names the notice and its official text, and for a
message only the date it was sent — never to whom, nor anything personal in it.

Codes are made in ``portal.verification`` and stored where they are issued (the publication,
the mailing recipient), each column unique, so a lookup is one or two indexed queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    notice: Notice | None  # None: a letter about no notice (a programme's terms)
    version: NoticeVersion | None
    published_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def withdrawn(self) -> bool:
        return self.notice is not None and self.notice.status == NoticeStatus.WITHDRAWN

    @property
    def superseded(self) -> bool:
        """A newer version of the notice was published since (the code stays genuine)."""
        return (self.notice is not None and self.version is not None and not self.withdrawn
                and self.notice.published_version_id is not None
                and self.notice.published_version_id != self.version.id)

    @property
    def has_public_page(self) -> bool:
        return (self.notice is not None and self.notice.publicly_visible
                and not self.withdrawn)


# Higher domains' codes (a printed letter: ``portal.letters``), connected by ``portal.wiring``:
# a finder takes a canonical code and returns None or an object with ``sent_at`` and
# ``version`` (the notice version it carried, or None).
_FINDERS: list[Callable[[str], Any]] = []


def add_finder(finder: Callable[[str], Any]) -> None:
    if finder not in _FINDERS:
        _FINDERS.append(finder)


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
        return _found_elsewhere(code)
    mailing = db.session.get(Mailing, row.mailing_id)
    return Issued("message", code, mailing.notice, mailing.version, sent_at=row.sent_at)


def _found_elsewhere(code: str) -> Issued | None:
    for finder in _FINDERS:
        found = finder(code)
        if found is not None:
            version = found.version
            return Issued("letter", code, version.notice if version else None, version,
                          sent_at=found.sent_at)
    return None


def look_up(text: str | None) -> tuple[str | None, Issued | None]:
    """The canonical form of what the reader typed (None: it cannot be a code) and what the
    code was issued for (None: not ours)."""
    code = verification.normalise(text)
    return code, (find(code) if code else None)
