"""The notice rules: content and versions, what a user may do now, sign-off binding, the
event's and the public notices. Publishing, schedules, emergencies and withdrawal are in
``publishing.py``.

Every function that changes state writes its audit entry in the caller's unit of work (the
request or job commits). Slow follow-up work (PDFs, cache invalidation) is queued by the caller
after the commit.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from portal import documents, refs
from portal.accounts import User
from portal.audit import services as audit
from portal.audit.services import canonical_json
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, localised
from portal.markdown import check_renderable, render_markdown
from portal.notices.content import unfilled_placeholders
from portal.notices.models import (
    AUDIENCES,
    CONTENT_LOCALES,
    Notice,
    NoticePdf,
    NoticeStatus,
    NoticeVersion,
    Publication,
)
from portal.signoffs import services as signoffs
from portal.signoffs.models import STANDING, SignoffRequest, SignoffStatus

SUBJECT = "notice_version"
MAX_TITLE = 300
MAX_BODY = 50_000

Content = dict[str, dict[str, str]]


def scope(notice: Notice) -> str:
    return f"notice:{notice.id}"


def clean_content(content: Content) -> Content:
    """Keep the locales that have a title; at least one is required; limits enforced."""
    cleaned: Content = {}
    for locale in CONTENT_LOCALES:
        entry = content.get(locale) or {}
        title = (entry.get("title") or "").strip()
        body = (entry.get("body") or "").replace("\r\n", "\n").strip()
        if not title and body:
            raise RuleViolation(_("A text needs a title."), field=f"title_{locale}")
        if not title:
            continue
        if len(title) > MAX_TITLE:
            raise RuleViolation(_("The title is too long."), field=f"title_{locale}")
        if len(body) > MAX_BODY:
            raise RuleViolation(_("The text is too long."), field=f"body_{locale}")
        check_renderable(body, field=f"body_{locale}")
        cleaned[locale] = {"title": title, "body": body}
    if not cleaned:
        raise RuleViolation(_("Write the notice in at least one language."), field="title_zh_CN")
    return cleaned


def content_hash(content: Content) -> str:
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def _slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60]


def _new_version(notice: Notice, content: Content, author: User | None) -> NoticeVersion:
    number = (notice.latest_version.number + 1) if notice.latest_version else 1
    version = NoticeVersion(
        notice=notice, number=number,
        title_zh=content.get("zh_CN", {}).get("title"),
        body_zh=content.get("zh_CN", {}).get("body"),
        title_en=content.get("en", {}).get("title"),
        body_en=content.get("en", {}).get("body"),
        content_hash=content_hash(content), author_id=author.id if author else None,
    )
    db.session.add(version)
    return version


def create_notice(
    event: Event, *, audience: str, content: Content, actor: User,
    planned_publish_at: datetime | None = None, publish_on_approval: bool = False,
) -> Notice:
    if audience not in AUDIENCES:
        raise RuleViolation(_("Choose who the notice is for."), field="audience")
    content = clean_content(content)
    # The counter row numbers it: two drafters at the same moment get two numbers.
    ref = refs.next_ref("N", 4, failure=_("Could not number the notice; try again."))
    slug_tail = _slugify(content.get("en", {}).get("title", "")) or "notice"
    notice = Notice(
        event=event, ref=ref, slug=f"{ref.lower()}-{slug_tail}", audience=audience,
        status=NoticeStatus.DRAFT, planned_publish_at=planned_publish_at,
        publish_on_approval=publish_on_approval and planned_publish_at is None,
        created_by_id=actor.id,
    )
    db.session.add(notice)
    version = _new_version(notice, content, actor)
    db.session.flush()
    audit.record("notice.create", "notice", notice.id,
                 N_("Notice %(ref)s “%(title)s” drafted (version 1)", ref=notice.ref,
                    title=localised({locale: entry["title"] for locale, entry in content.items()})),
                 after={**notice.audit_state(), "version": 1,
                        "content_hash": version.content_hash}, actor=actor)
    return notice


def save(
    notice: Notice, *, content: Content, audience: str, planned_publish_at: datetime | None,
    based_on: int, actor: User, publish_on_approval: bool | None = None,
) -> NoticeVersion | None:
    """Save an edit. Changed content makes a new immutable version; any change voids the
    notice's open and granted sign-offs. ``based_on`` is the version the editor started from:
    if someone saved a newer one meanwhile, nothing is overwritten. ``publish_on_approval``
    None keeps the plan's choice between "on approval" and "by hand"."""
    if not editable(actor, notice):
        raise RuleViolation(_("A withdrawn notice cannot be edited."))
    if audience not in AUDIENCES:
        raise RuleViolation(_("Choose who the notice is for."), field="audience")
    latest = notice.latest_version
    if latest is None or latest.number != based_on:
        raise RuleViolation(_("Someone saved a newer version while you were editing. Reload "
                              "the page to see it; your text has not been saved."))
    content = clean_content(content)
    if publish_on_approval is None:
        publish_on_approval = notice.publish_on_approval
    publish_on_approval = publish_on_approval and planned_publish_at is None
    content_changed = content_hash(content) != latest.content_hash
    settings_changed = (audience != notice.audience
                        or planned_publish_at != notice.planned_publish_at
                        or publish_on_approval != notice.publish_on_approval)
    if not content_changed and not settings_changed:
        return None
    before = notice.audit_state()
    version = _new_version(notice, content, actor) if content_changed else None
    notice.audience = audience
    notice.planned_publish_at = planned_publish_at
    notice.publish_on_approval = publish_on_approval
    notice.publish_refusal = None
    notice.scheduled_at = None
    notice.scheduled_version_id = None
    if notice.under_review:
        notice.status = NoticeStatus.DRAFT
    db.session.flush()
    keep = {notice.published_version_id} if notice.published_version_id else set()
    voided = signoffs.void_scope(scope(notice), "content changed", actor=actor,
                                 keep_subject_ids=keep)
    saved = (N_("Notice %(ref)s: version %(n)d saved", ref=notice.ref, n=version.number)
             if version else N_("Notice %(ref)s: settings saved", ref=notice.ref))
    audit.record("notice.edit", "notice", notice.id,
                 N_("%(change)s; sign-offs voided: %(voided)d", change=saved, voided=voided)
                 if voided else saved,
                 before=before, after={**notice.audit_state(),
                                       "version": (version or latest).number}, actor=actor)
    return version


# --- what a user may do with a notice now (asked by can() for the buttons) ------------------


def editable(_user: User, notice: Notice) -> bool:
    return notice.status != NoticeStatus.WITHDRAWN


def _unpublished_latest(notice: Notice) -> NoticeVersion | None:
    """The latest version, when it is not the published one and the notice is not withdrawn."""
    version = notice.latest_version
    if version is None or notice.status == NoticeStatus.WITHDRAWN:
        return None
    return None if version.id == notice.published_version_id else version


def may_request_signoff(_user: User, notice: Notice) -> bool:
    """Nothing asked for or granted yet for the latest, unpublished version."""
    version = _unpublished_latest(notice)
    if version is None:
        return False
    request = signoffs.latest(SUBJECT, version.id)
    return request is None or request.status not in STANDING


def may_publish(_user: User, notice: Notice) -> bool:
    """Legal granted the latest, unpublished version (not retroactively); not scheduled."""
    version = _unpublished_latest(notice)
    if version is None or notice.scheduled_at:
        return False
    request = signoffs.latest(SUBJECT, version.id)
    return (request is not None and request.status == SignoffStatus.APPROVED
            and not request.retroactive)


def may_emergency_publish(_user: User, notice: Notice) -> bool:
    return _unpublished_latest(notice) is not None and notice.event.urgent


def may_withdraw(_user: User, notice: Notice) -> bool:
    return notice.status == NoticeStatus.PUBLISHED


def pdf_kind(version: NoticeVersion) -> str:
    """The published version's PDF carries legal's stamp ("signed"); any other version's is a
    watermarked "draft"."""
    return "signed" if version.id == version.notice.published_version_id else "draft"


def request_pdf(version: NoticeVersion, kind: str, locale: str) -> NoticePdf:
    """The row for a version's PDF in one language (created once; the caller queues it after
    the commit)."""
    row, _created = documents.request(NoticePdf, {"version_id": version.id, "kind": kind,
                                                  "locale": locale})
    return row


def request_pdfs(version: NoticeVersion, kind: str) -> dict[str, NoticePdf]:
    """The rows of a version's PDFs, one per language (see :func:`request_pdf`)."""
    return {locale: request_pdf(version, kind, locale) for locale in CONTENT_LOCALES}


def signed_pdfs(version_id: int | None) -> dict[str, NoticePdf]:
    """A version's stamped PDFs by language (the ones customers get)."""
    return {row.locale: row for row in db.session.scalars(select(NoticePdf).where(
        NoticePdf.version_id == version_id, NoticePdf.kind == "signed"))}


def publication_code(version_id: int | None) -> str | None:
    """The verification code issued when the version was published (None if it never was)."""
    if version_id is None:
        return None
    return db.session.scalar(select(Publication.verification_code).where(
        Publication.version_id == version_id).order_by(Publication.id.desc()).limit(1))



def snapshot(notice: Notice, version: NoticeVersion) -> dict[str, Any]:
    """Exactly what legal approves: rendered text per locale, audience and publish plan."""
    return {
        "notice": notice.ref,
        "version": version.number,
        "audience": notice.audience,
        "publish_plan": notice.publish_plan,
        "locales": {
            locale: {"title": entry["title"], "body_html": render_markdown(entry["body"])}
            for locale, entry in version.content().items()
        },
    }


class UnfilledPlaceholders(RuleViolation):
    """The text still holds template placeholders; ``missing`` lists them per form field."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        names = sorted({name for names in missing.values() for name in names})
        super().__init__(_("Fill in every placeholder before asking for sign-off: "
                           "%(names)s.", names=", ".join(names)), field=next(iter(missing)))
        self.missing = missing


def request_signoff(notice: Notice, *, actor: User, retroactive: bool = False) -> SignoffRequest:
    """Ask legal to approve the latest version. Refused while its text holds an unfilled
    placeholder (``UnfilledPlaceholders``), and for the published version unless
    ``retroactive`` (an emergency publication, reviewed afterwards)."""
    version = notice.latest_version
    if version is None or notice.status == NoticeStatus.WITHDRAWN:
        raise RuleViolation(_("There is nothing to review."))
    if version.id == notice.published_version_id and not retroactive:
        raise RuleViolation(_("This version is already published; edit the notice to "
                              "prepare an update."))
    missing = unfilled_placeholders(version.content())
    if missing and not retroactive:
        raise UnfilledPlaceholders(missing)
    request = signoffs.open_request(
        subject_type=SUBJECT, subject_id=version.id, scope=scope(notice),
        title=N_("%(ref)s v%(n)d — %(title)s", ref=notice.ref, n=version.number,
                 title=localised({locale: entry["title"]
                                  for locale, entry in version.content().items()})),
        snapshot=snapshot(notice, version), author_id=version.author_id, requested_by=actor,
        retroactive=retroactive,
    )
    if notice.status == NoticeStatus.DRAFT:
        notice.status = NoticeStatus.IN_REVIEW
    return request


def after_signoff_decision(request: SignoffRequest, actor: User) -> None:
    version = db.session.get(NoticeVersion, request.subject_id)
    notice = version.notice
    if request.retroactive or notice.status != NoticeStatus.IN_REVIEW:
        return  # a published notice keeps its state; the decision is on its record
    granted = request.status == SignoffStatus.APPROVED
    notice.status = NoticeStatus.APPROVED if granted else NoticeStatus.DRAFT


def event_notices(event: Event) -> list[Notice]:
    """The event's notices, oldest first."""
    return list(db.session.scalars(select(Notice).where(Notice.event_id == event.id)
                                   .order_by(Notice.id)))


def public_notices(event_id: int | None = None) -> list[Notice]:
    """Published public notices: urgent (sev1/sev2) first, then newest first."""
    urgent = Event.severity.in_(["sev1", "sev2"])
    stmt = (select(Notice).join(Event).where(
        Notice.audience == "public", Notice.published_version_id.is_not(None),
        Notice.hidden.is_(False))
        .order_by(urgent.desc(), Notice.last_published_at.desc()))
    if event_id:
        stmt = stmt.where(Notice.event_id == event_id)
    return list(db.session.scalars(stmt))


def public_events(locale: str) -> list[tuple[int, str]]:
    """(id, public title in ``locale``) of the events that have published public notices and
    a public title; an event without one (an internal or test event) is not named."""
    events = {n.event_id: n.event for n in public_notices()}
    named = [(event.id, event.public_title_in(locale)) for event in events.values()]
    return [(event_id, title) for event_id, title in named if title]


def public_notice(slug: str) -> Notice | None:
    notice = db.session.scalar(select(Notice).where(Notice.slug == slug))
    return notice if notice is not None and notice.publicly_visible else None
