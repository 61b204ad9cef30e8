"""Notices, their immutable versions, publications (the public timeline) and PDFs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.documents import DocumentRow
from portal.events.models import Event
from portal.extensions import db
from portal.models import UTCDateTime, utcnow
from portal.signoffs.models import BY_HAND, ON_APPROVAL, SignoffRequest

CONTENT_LOCALES = ("zh_CN", "en")
AUDIENCES = ("public", "direct")


class NoticeStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


# A version's PDF: watermarked draft, or with legal's stamp.
PDF_KINDS = {"draft": _l("draft"), "signed": _l("signed")}
STATUS_LABELS = {
    NoticeStatus.DRAFT: _l("Draft"),
    NoticeStatus.IN_REVIEW: _l("In review"),
    NoticeStatus.APPROVED: _l("Approved"),
    NoticeStatus.PUBLISHED: _l("Published"),
    NoticeStatus.WITHDRAWN: _l("Withdrawn"),
    "public": _l("Public"),
    "direct": _l("Direct (e-mail only)"),
}

# What the staff notice page says of a version's PDFs: their kind and their rendering.
PDF_LABELS = {
    "draft": _l("draft, watermarked"),
    "signed": _l("with legal's stamp"),
    "queued": _l("waiting"),
    "running": _l("rendering"),
    "done": _l("ready"),
    "failed": _l("failed"),
}


# The plans a sign-off snapshot names (the sign-off page reads them, see signoffs.models).
PLAN_ON_APPROVAL, PLAN_BY_HAND = ON_APPROVAL, BY_HAND
# Why an approval under the plan "on approval" did not publish the version.
PUBLISH_REFUSALS = {
    "not_latest": _l("Approved, but not published: a newer version was saved meanwhile."),
    "withdrawn": _l("Approved, but not published: the notice was withdrawn meanwhile."),
    "published": _l("Approved, but not published: this version was already published."),
    "not_covered": _l("Approved, but not published: the approved text or plan no longer "
                      "matches this version; request a new sign-off."),
}


class ImmutableError(RuntimeError):
    """Raised when code tries to change a notice version after it was saved."""


class Notice(db.Model):
    __tablename__ = "notice"
    __table_args__ = (
        CheckConstraint("audience IN ('public', 'direct')", name="audience_known"),
        CheckConstraint(
            "status IN ('draft', 'in_review', 'approved', 'published', 'withdrawn')",
            name="status_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    ref: Mapped[str] = mapped_column(String(20), unique=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    audience: Mapped[str] = mapped_column(String(8), default="public")
    status: Mapped[str] = mapped_column(String(12), default=NoticeStatus.DRAFT)
    # The publish plan: at a time, as soon as legal approves, or by hand once approved.
    planned_publish_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    publish_on_approval: Mapped[bool] = mapped_column(Boolean, default=False,
                                                      server_default=false())
    # Why the last approval under the plan "on approval" did not publish (a PUBLISH_REFUSALS
    # key, shown on the notice page); cleared by the next publication or edit.
    publish_refusal: Mapped[str | None] = mapped_column(String(32))
    # A scheduled publication waiting for its time (kept here so a restart cannot lose it).
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    scheduled_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("notice_version.id", use_alter=True)
    )
    published_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("notice_version.id", use_alter=True)
    )
    first_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    event: Mapped[Event] = relationship()
    created_by: Mapped[User | None] = relationship()
    versions: Mapped[list[NoticeVersion]] = relationship(
        back_populates="notice", order_by="NoticeVersion.number",
        foreign_keys="NoticeVersion.notice_id",
    )
    published_version: Mapped[NoticeVersion | None] = relationship(
        foreign_keys=[published_version_id], post_update=True
    )
    publications: Mapped[list[Publication]] = relationship(
        back_populates="notice", order_by="Publication.published_at"
    )

    @property
    def latest_version(self) -> NoticeVersion | None:
        return self.versions[-1] if self.versions else None

    @property
    def under_review(self) -> bool:
        """A sign-off is asked for or granted: saving a change voids it."""
        return self.status in (NoticeStatus.IN_REVIEW, NoticeStatus.APPROVED)

    @property
    def publicly_visible(self) -> bool:
        return (
            self.audience == "public" and self.published_version_id is not None
            and not self.hidden
        )

    @property
    def publish_plan(self) -> str:
        """The plan as legal's snapshot states it: a time, "on approval" or "by hand"."""
        if self.planned_publish_at:
            return self.planned_publish_at.isoformat()
        return PLAN_ON_APPROVAL if self.publish_on_approval else PLAN_BY_HAND

    def audit_state(self) -> dict[str, object]:
        return {
            "ref": self.ref, "slug": self.slug, "audience": self.audience,
            "status": self.status,
            "planned_publish_at": self.planned_publish_at.isoformat()
            if self.planned_publish_at else None,
            "publish_on_approval": self.publish_on_approval,
            "published_version_id": self.published_version_id,
            "hidden": self.hidden,
        }


class NoticeVersion(db.Model):
    """One saved state of a notice's content: immutable once written."""

    __tablename__ = "notice_version"
    __table_args__ = (UniqueConstraint("notice_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notice.id"))
    number: Mapped[int] = mapped_column(Integer)
    title_zh: Mapped[str | None] = mapped_column(String(300))
    body_zh: Mapped[str | None] = mapped_column(Text)
    title_en: Mapped[str | None] = mapped_column(String(300))
    body_en: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    notice: Mapped[Notice] = relationship(back_populates="versions", foreign_keys=[notice_id])
    author: Mapped[User | None] = relationship()
    pdfs: Mapped[list[NoticePdf]] = relationship(viewonly=True, order_by="NoticePdf.id")

    def content(self) -> dict[str, dict[str, str]]:
        """Title and Markdown body per locale that has a title."""
        found = {}
        if self.title_zh:
            found["zh_CN"] = {"title": self.title_zh, "body": self.body_zh or ""}
        if self.title_en:
            found["en"] = {"title": self.title_en, "body": self.body_en or ""}
        return found

    def in_locale(self, locale: str) -> tuple[str, dict[str, str]]:
        """The content in ``locale``, or in the other language when it has none."""
        content = self.content()
        if locale in content:
            return locale, content[locale]
        other = next(iter(content))
        return other, content[other]


class Publication(db.Model):
    """A version going public: the first publication, each update, emergency ones."""

    __tablename__ = "notice_publication"
    # A version goes public once; an update is a new version, hence a new row.
    __table_args__ = (UniqueConstraint("notice_id", "version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notice.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("notice_version.id"))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    signoff_id: Mapped[int | None] = mapped_column(ForeignKey("signoff_request.id"))
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    emergency_reason: Mapped[str | None] = mapped_column(Text)
    # What readers check at /verify (see portal/verification.py): issued with the publication,
    # shown on the public page and in the version's signed PDFs; unique, so one indexed lookup.
    verification_code: Mapped[str | None] = mapped_column(String(10), unique=True)

    notice: Mapped[Notice] = relationship(back_populates="publications")
    version: Mapped[NoticeVersion] = relationship()
    published_by: Mapped[User | None] = relationship()
    signoff: Mapped[SignoffRequest | None] = relationship()


class NoticeSetting(db.Model):
    """A setting the notice templates fill in (the hotline, the contact e-mail)."""

    __tablename__ = "notice_setting"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(300))


class NoticePdf(DocumentRow, db.Model):
    """A PDF of one version in one language (one row per language of ``CONTENT_LOCALES``):
    the row comes first, the RQ job fills it in."""

    __tablename__ = "notice_pdf"
    __table_args__ = (UniqueConstraint("version_id", "kind", "locale"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("notice_version.id"))
    kind: Mapped[str] = mapped_column(String(8))  # "draft" (watermarked) or "signed"
    # The reader's language: its words, and its text (or, when the version lacks that
    # language, the other one's text with a note saying so).
    locale: Mapped[str] = mapped_column(String(8))

    version: Mapped[NoticeVersion] = relationship()


@event.listens_for(NoticeVersion, "before_update")
def _refuse_version_update(*_: object) -> None:
    raise ImmutableError("notice versions are immutable; save a new version instead")
