"""Customers' links to their own page (``/my/<token>``).

A link is a random token (``secrets.token_urlsafe(32)``: 256 bits) handed to one customer
once, in an e-mail; the database keeps only its SHA-256, so a copy of the database opens no
customer's page. Two kinds:

- **personal**: in every mailing message and every case reply; usable until it expires
  (``link_lifetime_days``, 90 by default, set by an admin) or staff revoke it. As only the
  hash is kept, a link cannot be shown again: each message carries a link of its own, and the
  staff customer page lists them (where each was sent, created, expires, last used).
- **one time**: asked for with an e-mail address and an order or case ref on a notice page;
  valid 30 minutes and for one visit. Its row is written by the request and its token made by
  the job that e-mails it (``portal.my.tasks``), so the token never passes through Redis.

Following a link is a customer action: audited with the actor ``customer:<id>`` (never a
name). Higher domains (mailings, cases, the customer page) issue and check links through the
functions here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts import User
from portal.audit import services as audit
from portal.audit.models import customer_actor
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import UTCDateTime, utcnow

DEFAULT_LIFETIME_DAYS = 90
MAX_LIFETIME_DAYS = 366
ONE_TIME_MINUTES = 30
TOKEN_BYTES = 32
LIFETIME_KEY = "link_lifetime_days"


class LinkKind(StrEnum):
    PERSONAL = "personal"
    ONE_TIME = "one_time"


class LinkMail(StrEnum):
    """A one-time link's e-mail: queued → sending (claimed by the job) → sent | failed."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


KIND_LABELS = {LinkKind.PERSONAL: _l("personal link"), LinkKind.ONE_TIME: _l("one-time link")}


class CustomerLink(db.Model):
    __tablename__ = "customer_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    # SHA-256 of the token, hex; NULL until a one-time link's job made its token.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Where the link was sent: "mailing:<id>", "reply:<note id>", "request", "demo".
    sent_with: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # one-time links
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    mail_status: Mapped[str | None] = mapped_column(String(8))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    customer: Mapped[Customer] = relationship()
    revoked_by: Mapped[User | None] = relationship()

    @property
    def active(self) -> bool:
        return (self.revoked_at is None and self.used_at is None
                and self.expires_at > utcnow())


class CustomerSetting(db.Model):
    """Admin-set values of the customers domain (the personal links' lifetime)."""

    __tablename__ = "customer_setting"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


# --- tokens ------------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and its hash."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)


def link_url(token: str) -> str:
    return f"{current_app.config['PORTAL_BASE_URL'].rstrip('/')}/my/{token}"


# --- settings ----------------------------------------------------------------------------------


def link_lifetime_days() -> int:
    row = db.session.get(CustomerSetting, LIFETIME_KEY)
    return int(row.value) if row else DEFAULT_LIFETIME_DAYS


def set_link_lifetime(raw: str, *, actor: User) -> bool:
    """Set how many days a new personal link stays valid (links already sent keep theirs);
    flushed, audited; False when it already was that."""
    raw = (raw or "").strip()
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIFETIME_DAYS:
        raise RuleViolation(_("Enter whole days between 1 and %(max)d.", max=MAX_LIFETIME_DAYS),
                            field="link_lifetime_days")
    days, before = int(raw), link_lifetime_days()
    if days == before:
        return False
    row = db.session.get(CustomerSetting, LIFETIME_KEY)
    if row is None:
        db.session.add(CustomerSetting(key=LIFETIME_KEY, value=str(days)))
    else:
        row.value = str(days)
    audit.record("settings.link_lifetime", audit.SETTING, LIFETIME_KEY,
                 N_("Customer links valid for %(days)d days", days=days),
                 before={"days": before}, after={"days": days}, actor=actor)
    return True


# --- issuing -------------------------------------------------------------------------------------


def issue_personal(customer: Customer, *, sent_with: str) -> tuple[CustomerLink, str]:
    """A new personal link for ``customer`` (flushed); returns the row and the token, which
    exists only in the caller's hands from here on."""
    token, digest = new_token()
    now = utcnow()
    link = CustomerLink(customer_id=customer.id, kind=LinkKind.PERSONAL, token_hash=digest,
                        sent_with=sent_with[:40], created_at=now,
                        expires_at=now + timedelta(days=link_lifetime_days()))
    db.session.add(link)
    db.session.flush()
    return link, token


def personal_row(customer_id: int, *, sent_with: str,
                 lifetime_days: int) -> tuple[dict[str, Any], str]:
    """The row of a new personal link, for a job that inserts it with a Core statement in
    its own transaction (a mailing: one per message, hundreds a second), and its token."""
    token, digest = new_token()
    now = utcnow()
    return {"customer_id": customer_id, "kind": LinkKind.PERSONAL.value, "token_hash": digest,
            "sent_with": sent_with[:40], "created_at": now,
            "expires_at": now + timedelta(days=lifetime_days), "attempts": 0}, token


def preview_url() -> str:
    """The link shown in a staff preview or a test send: it opens nobody's page."""
    return link_url("preview")


def request_one_time(customer: Customer) -> CustomerLink:
    """A one-time link asked for from a notice page: the row now (flushed, mail queued), the
    token when its job e-mails it. Audited as the customer's action."""
    now = utcnow()
    link = CustomerLink(customer_id=customer.id, kind=LinkKind.ONE_TIME, token_hash=None,
                        sent_with="request", created_at=now,
                        expires_at=now + timedelta(minutes=ONE_TIME_MINUTES),
                        mail_status=LinkMail.QUEUED)
    db.session.add(link)
    db.session.flush()
    audit.record("customer.link_requested", "customer", customer.id,
                 N_("One-time link #%(link)d requested from a notice page", link=link.id),
                 after={"link_id": link.id, "expires_at": link.expires_at.isoformat()},
                 actor_label=customer_actor(customer.id))
    return link


def claim_one_time(link_id: int, lease: timedelta) -> str | None:
    """For the e-mail job: claim a queued one-time link (queued, or sending past the lease)
    and give it a fresh token; returns the token, None when there is nothing to send."""
    now = utcnow()
    token, digest = new_token()
    waiting = (CustomerLink.mail_status == LinkMail.QUEUED) | (
        (CustomerLink.mail_status == LinkMail.SENDING) & (CustomerLink.claimed_at < now - lease))
    claimed = db.session.execute(
        update(CustomerLink).where(CustomerLink.id == link_id, waiting,
                                   CustomerLink.expires_at > now)
        .values(mail_status=LinkMail.SENDING, claimed_at=now, token_hash=digest,
                attempts=CustomerLink.attempts + 1)
        .execution_options(synchronize_session=False)).rowcount
    return token if claimed == 1 else None


# --- following -----------------------------------------------------------------------------------


class LinkProblem(StrEnum):
    """Why a token opens nothing; each has its page (``templates/my/link_problem.html``)."""

    UNKNOWN = "unknown"  # never issued, mistyped, or forged
    EXPIRED = "expired"
    REVOKED = "revoked"
    USED = "used"  # a one-time link followed before
    ERASED = "erased"  # the customer was erased


PROBLEM_STATUS = {LinkProblem.UNKNOWN: 404, LinkProblem.EXPIRED: 410,
                  LinkProblem.REVOKED: 410, LinkProblem.USED: 410, LinkProblem.ERASED: 404}


@dataclass
class Followed:
    link: CustomerLink | None
    problem: LinkProblem | None

    @property
    def customer(self) -> Customer | None:
        return self.link.customer if self.link is not None and self.problem is None else None


def check(token: str) -> Followed:
    """What ``token`` opens, without changing anything."""
    if not token or len(token) > 200:
        return Followed(None, LinkProblem.UNKNOWN)
    link = db.session.scalar(select(CustomerLink).where(
        CustomerLink.token_hash == token_hash(token)))
    if link is None:
        return Followed(None, LinkProblem.UNKNOWN)
    if link.customer.erased:
        return Followed(link, LinkProblem.ERASED)
    if link.revoked_at is not None:
        return Followed(link, LinkProblem.REVOKED)
    if link.used_at is not None:
        return Followed(link, LinkProblem.USED)
    if link.expires_at <= utcnow():
        return Followed(link, LinkProblem.EXPIRED)
    return Followed(link, None)


def follow(token: str) -> Followed:
    """Open ``token``'s link: a one-time link is spent (one conditional update, so two
    visits at once cannot both pass), a personal link's last use noted; audited as the
    customer's action. The caller commits."""
    found = check(token)
    link = found.link
    if link is None or found.problem is not None:
        return found
    now = utcnow()
    if link.kind == LinkKind.ONE_TIME:
        spent = db.session.execute(
            update(CustomerLink).where(CustomerLink.id == link.id, CustomerLink.used_at.is_(None))
            .values(used_at=now, last_used_at=now)
            .execution_options(synchronize_session=False)).rowcount
        if spent != 1:
            return Followed(link, LinkProblem.USED)
        db.session.refresh(link)
    else:
        link.last_used_at = now
    audit.record("customer.link_followed", "customer", link.customer_id,
                 N_("Customer page opened with %(kind)s #%(link)d",
                    kind=term("customer_link", link.kind), link=link.id),
                 after={"link_id": link.id}, actor_label=customer_actor(link.customer_id))
    return found


def session_link_valid(link_id: int, customer_id: int) -> bool:
    """Whether the link a customer session was opened with still stands (not revoked; a
    one-time link's session lives its own short life after the link was spent)."""
    link = db.session.get(CustomerLink, link_id)
    return (link is not None and link.customer_id == customer_id and link.revoked_at is None
            and not link.customer.erased)


# --- staff ---------------------------------------------------------------------------------------


def active_links(customer: Customer) -> list[CustomerLink]:
    """The customer's links that still open their page, newest first."""
    now = utcnow()
    return list(db.session.scalars(select(CustomerLink).where(
        CustomerLink.customer_id == customer.id, CustomerLink.revoked_at.is_(None),
        CustomerLink.used_at.is_(None), CustomerLink.expires_at > now,
        CustomerLink.token_hash.is_not(None)).order_by(CustomerLink.id.desc())))


def revoke(link: CustomerLink, *, actor: User) -> bool:
    """Revoke one link (flushed, audited); False when it no longer worked anyway. Sessions
    opened with it end at their next request."""
    if not link.active:
        return False
    link.revoked_at, link.revoked_by_id = utcnow(), actor.id
    audit.record("customer.link_revoked", "customer", link.customer_id,
                 N_("Customer link #%(link)d revoked", link=link.id),
                 after={"link_id": link.id}, actor=actor)
    return True


def erase_links(customer_ids: list[int]) -> int:
    """Remove every link of these erased customers (their page closes for good)."""
    return db.session.execute(delete(CustomerLink).where(
        CustomerLink.customer_id.in_(customer_ids))).rowcount
