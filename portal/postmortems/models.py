"""The post-mortem (复盘) of an event: six Markdown steps, and the PDFs made of it."""

from __future__ import annotations

import hashlib
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.documents import DocumentRow
from portal.events.models import Event
from portal.extensions import db
from portal.models import UTCDateTime, utcnow
from portal.signoffs.models import SignoffRequest

# The six steps of 复盘, in order. The Chinese term names the step in every language (it is
# the method's own vocabulary); the English title is translated like any other string.
STEPS = ("goals", "narrative", "result", "causes", "lessons", "conclusion")
STEP_TERMS = {
    "goals": "回顾目标",
    "narrative": "叙述过程",
    "result": "评估结果",
    "causes": "分析原因",
    "lessons": "总结经验",
    "conclusion": "形成文档",
}
STEP_TITLES = {
    "goals": _l("Review the goals"),
    "narrative": _l("Narrate what happened"),
    "result": _l("Evaluate the result"),
    "causes": _l("Analyse the causes"),
    "lessons": _l("Draw the lessons"),
    "conclusion": _l("Write it up"),
}
STEP_HINTS = {
    "goals": _l("What did we set out to achieve, for customers and for the business?"),
    "narrative": _l("What happened, in order, as the timeline shows it."),
    "result": _l("How far did we reach the goals? Use the facts beside the editor."),
    "causes": _l("Why did it happen, and why did our systems and processes allow it?"),
    "lessons": _l("What do we keep doing, what do we change, and who owns each change?"),
    "conclusion": _l("The conclusion, as it should be filed and read later."),
}
BLAMELESS_REMINDER = _l("Blameless: describe what happened and why our systems and processes "
                        "allowed it, not who did it. Names and e-mail addresses of staff or "
                        "of this event's customers are refused.")
MAX_STEP_LENGTH = 20000


class Postmortem(db.Model):
    __tablename__ = "postmortem"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), unique=True)
    goals: Mapped[str] = mapped_column(Text, default="")
    narrative: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str] = mapped_column(Text, default="")
    causes: Mapped[str] = mapped_column(Text, default="")
    lessons: Mapped[str] = mapped_column(Text, default="")
    conclusion: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Optimistic locking: an UPDATE from a stale copy matches no row and fails.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": lock_version}

    event: Mapped[Event] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    updated_by: Mapped[User | None] = relationship(foreign_keys=[updated_by_id])

    def texts(self) -> dict[str, str]:
        """The six steps' Markdown, in order."""
        return {step: getattr(self, step) or "" for step in STEPS}

    def audit_state(self) -> dict[str, object]:
        """Each step as a SHA-256, not its text: the trail proves what was saved without
        keeping a second, unerasable copy of it."""
        return {"event_id": self.event_id, **{
            step: hashlib.sha256(text.encode()).hexdigest() if text else ""
            for step, text in self.texts().items()}}


class PostmortemPdf(DocumentRow, db.Model):
    """A PDF of one saved state of a post-mortem: the row comes first, the RQ job fills it."""

    __tablename__ = "postmortem_pdf"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                        name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    postmortem_id: Mapped[int] = mapped_column(ForeignKey("postmortem.id"), index=True)
    # The content it shows: the post-mortem's lock_version when the PDF was asked for.
    lock_version: Mapped[int] = mapped_column(Integer)
    # Legal's grant that covered that content when asked for (it stamps the PDF), if any.
    signoff_id: Mapped[int | None] = mapped_column(ForeignKey("signoff_request.id"))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    postmortem: Mapped[Postmortem] = relationship()
    signoff: Mapped[SignoffRequest | None] = relationship()
