"""Subscriptions: asking (the same answer for every address), the double opt-in, managing
with a signed link or an e-mailed one-time code, unsubscribing, and what erasure and
retention remove.

Every signed link carries the subscription's id and ``nonce``: the confirmation link expires
(``SUBSCRIPTION_CONFIRM_HOURS``), the link in each message does not (it unsubscribes with
one click, RFC 8058). E-mails go out from jobs (``tasks.py``), never from the request, so
the answer takes the same time whether the address is known or not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from portal.audit import services as audit
from portal.config import LOCALES
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, term
from portal.models import utcnow
from portal.notices import services as notices
from portal.subscriptions.models import (
    ALL,
    MailKind,
    Subscription,
    SubscriptionCode,
    SubscriptionStatus,
)

SUBJECT = "subscription"
CODE_DIGITS = 6


def fold(email: str) -> str:
    return (email or "").strip().lower()[:254]


def scope_for(event_id: int | None) -> str:
    return f"event:{event_id}" if event_id else ALL


def _scope_term(scope: str) -> dict[str, str]:
    return term("subscription_scope", "all" if scope == ALL else "event")


def subscribable_event(event_id: int | None) -> Event | None:
    """The event a reader may subscribe to: one with published public notices."""
    if not event_id:
        return None
    if event_id not in {n.event_id for n in notices.public_notices(event_id)}:
        raise RuleViolation(_("Choose an event from the list."), field="event")
    return db.session.get(Event, event_id)


# ----------------------------------------------------------------------------- asking

def subscribe(email: str, event_id: int | None, locale: str) -> int | None:
    """Ask for a subscription. Whatever the address's state, the caller shows the same page;
    what differs is only the e-mail the job sends: a confirmation link (new, pending or
    unsubscribed before) or "you are already subscribed" with the management link. Returns
    the row whose e-mail the caller queues (None: a twin request at the same moment won)."""
    subscribable_event(event_id)
    email, scope = fold(email), scope_for(event_id)
    locale = locale if locale in LOCALES else "zh_CN"
    now = utcnow()
    expires = now + timedelta(hours=confirm_hours())
    row = db.session.scalar(select(Subscription).where(Subscription.email == email,
                                                       Subscription.scope == scope))
    if row is None:
        row = Subscription(email=email, scope=scope, event_id=event_id, locale=locale,
                           status=SubscriptionStatus.PENDING, nonce=secrets.token_hex(16),
                           expires_at=expires, mail=MailKind.CONFIRM, created_at=now)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:  # the same address, at the same moment: one row wins
            return None
    elif row.status == SubscriptionStatus.ACTIVE:
        row.mail = MailKind.ALREADY  # its language stays until the owner changes it
    else:  # pending again, or unsubscribed before: a fresh link, the old ones void
        row.status, row.locale, row.expires_at = SubscriptionStatus.PENDING, locale, expires
        row.nonce, row.unsubscribed_at, row.mail = secrets.token_hex(16), None, MailKind.CONFIRM
    row.mail_attempts = 0
    db.session.flush()
    audit.record("subscription.request", SUBJECT, row.id,
                 N_("Subscription #%(id)d asked for (%(scope)s)", id=row.id,
                    scope=_scope_term(scope)), after=row.audit_state(), actor=None)
    return row.id


def confirm_hours() -> int:
    return int(current_app.config["SUBSCRIPTION_CONFIRM_HOURS"])


# ----------------------------------------------------------------------------- signed links

def _keys() -> list[str]:
    config = current_app.config
    return [*(config.get("SECRET_KEY_FALLBACKS") or ()), config["SECRET_KEY"]]


def confirmation_token(row: Subscription) -> str:
    return URLSafeTimedSerializer(_keys(), salt="subscription-confirm").dumps(
        [row.id, row.nonce])


def manage_token(row: Subscription) -> str:
    return URLSafeSerializer(_keys(), salt="subscription-manage").dumps([row.id, row.nonce])


def _base() -> str:
    return current_app.config["PORTAL_BASE_URL"]


def confirmation_url(row: Subscription) -> str:
    return f"{_base()}/subscriptions/confirm/{confirmation_token(row)}?lang={row.locale}"


def manage_url(row: Subscription) -> str:
    return f"{_base()}/subscriptions/{manage_token(row)}?lang={row.locale}"


def unsubscribe_url(row: Subscription) -> str:
    return f"{_base()}/subscriptions/{manage_token(row)}/unsubscribe"


def _row(payload: object) -> Subscription | None:
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], int)):
        return None
    row = db.session.get(Subscription, payload[0])
    return row if row is not None and hmac.compare_digest(row.nonce, str(payload[1])) else None


def for_confirmation(token: str) -> tuple[Subscription | None, str]:
    """The subscription of a confirmation link, or None and why ("expired", "invalid")."""
    try:
        payload = URLSafeTimedSerializer(_keys(), salt="subscription-confirm").loads(
            token, max_age=confirm_hours() * 3600)
    except SignatureExpired:
        return None, "expired"
    except BadSignature:
        return None, "invalid"
    row = _row(payload)
    return (row, "") if row is not None else (None, "invalid")


def for_manage_token(token: str) -> Subscription | None:
    try:
        return _row(URLSafeSerializer(_keys(), salt="subscription-manage").loads(token))
    except BadSignature:
        return None


# ----------------------------------------------------------------------------- changes

def confirm(row: Subscription) -> bool:
    """pending → active (one conditional update); False when it was not pending."""
    done = db.session.execute(
        update(Subscription).where(Subscription.id == row.id,
                                   Subscription.status == SubscriptionStatus.PENDING)
        .values(status=SubscriptionStatus.ACTIVE, confirmed_at=utcnow(), expires_at=None)
        .execution_options(synchronize_session=False)).rowcount == 1
    db.session.expire(row)
    if done:
        audit.record("subscription.confirm", SUBJECT, row.id,
                     N_("Subscription #%(id)d confirmed (%(scope)s)", id=row.id,
                        scope=_scope_term(row.scope)), after=row.audit_state(), actor=None)
    return done


def change(row: Subscription, *, locale: str, event_id: int | None) -> bool:
    """A new language or scope, asked with the signed link or after the one-time code.
    A scope the address already has is refused next to its field. False: nothing changed."""
    if row.status == SubscriptionStatus.PENDING:
        raise RuleViolation(_("Not confirmed yet: open the link in our first e-mail."))
    if row.status != SubscriptionStatus.ACTIVE:
        raise RuleViolation(_("This subscription has ended; subscribe again."))
    if locale not in LOCALES:
        raise RuleViolation(_("Choose a language from the list."), field="locale")
    subscribable_event(event_id)
    scope = scope_for(event_id)
    if (locale, scope) == (row.locale, row.scope):
        return False
    if scope != row.scope and db.session.scalar(select(Subscription.id).where(
            Subscription.email == row.email, Subscription.scope == scope)):
        raise RuleViolation(_("You already have a subscription to these notices."),
                            field="event")
    before = row.audit_state()
    row.locale, row.scope, row.event_id = locale, scope, event_id
    db.session.flush()
    audit.record("subscription.change", SUBJECT, row.id,
                 N_("Subscription #%(id)d changed (%(scope)s)", id=row.id,
                    scope=_scope_term(scope)), before=before, after=row.audit_state(),
                 actor=None)
    return True


def unsubscribe(row: Subscription, *, via: str) -> bool:
    """active or pending → unsubscribed; False when it already was."""
    now = utcnow()
    done = db.session.execute(
        update(Subscription).where(Subscription.id == row.id,
                                   Subscription.status != SubscriptionStatus.UNSUBSCRIBED)
        .values(status=SubscriptionStatus.UNSUBSCRIBED, unsubscribed_at=now, expires_at=None,
                mail=None).execution_options(synchronize_session=False)).rowcount == 1
    db.session.expire(row)
    if done:
        audit.record("subscription.unsubscribe", SUBJECT, row.id,
                     N_("Subscription #%(id)d ended (%(via)s)", id=row.id,
                        via=term("unsubscribe_via", via)), after=row.audit_state(), actor=None)
    return done


# ----------------------------------------------------------------------------- one-time codes

def _digest(email: str, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{email}\0{code}".encode(), hashlib.sha256).hexdigest()


def request_code(email: str, locale: str) -> None:
    """Queue a one-time code for the address, only when it has subscriptions to manage (the
    page says the same either way: the code is made and mailed by the job)."""
    email = fold(email)
    if not db.session.scalar(select(Subscription.id).where(
            Subscription.email == email, Subscription.status == SubscriptionStatus.ACTIVE)):
        return
    row = db.session.scalar(select(SubscriptionCode).where(SubscriptionCode.email == email))
    if row is None:
        row = SubscriptionCode(email=email, locale=locale)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:
            return
    row.locale, row.mail, row.mail_attempts = locale, "queued", 0
    db.session.flush()


def code_id_for(email: str) -> int | None:
    """The code row waiting for its e-mail, if :func:`request_code` queued one."""
    return db.session.scalar(select(SubscriptionCode.id).where(
        SubscriptionCode.email == fold(email), SubscriptionCode.mail == "queued"))


def issue_code(row: SubscriptionCode) -> str:
    """A new code for the row (the old one void), kept as a keyed digest; returned once, for
    the e-mail."""
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    row.code_hash, row.attempts = _digest(row.email, code), 0
    row.expires_at = utcnow() + timedelta(minutes=int(current_app.config[
        "SUBSCRIPTION_CODE_MINUTES"]))
    return code


def redeem_code(email: str, code: str) -> list[Subscription] | None:
    """The address's active subscriptions when ``code`` is its current code (then spent), or
    None: a wrong, expired or spent code, or too many attempts (each try counts first, in one
    conditional update, so parallel guesses cannot exceed the limit)."""
    email, code = fold(email), (code or "").strip()
    limit = int(current_app.config["SUBSCRIPTION_CODE_ATTEMPTS"])
    now = utcnow()
    counted = db.session.execute(
        update(SubscriptionCode).where(
            SubscriptionCode.email == email, SubscriptionCode.code_hash.is_not(None),
            SubscriptionCode.expires_at > now, SubscriptionCode.attempts < limit)
        .values(attempts=SubscriptionCode.attempts + 1)
        .execution_options(synchronize_session=False)).rowcount == 1
    if not counted:
        return None
    row = db.session.scalar(select(SubscriptionCode).where(SubscriptionCode.email == email))
    db.session.refresh(row)
    if not hmac.compare_digest(row.code_hash or "", _digest(email, code)):
        return None
    row.code_hash, row.expires_at = None, None  # one time only
    return active_for(email)


def active_for(email: str) -> list[Subscription]:
    return list(db.session.scalars(select(Subscription).where(
        Subscription.email == fold(email), Subscription.status == SubscriptionStatus.ACTIVE)
        .order_by(Subscription.id)))


# ----------------------------------------------------------------------------- staff figures

@dataclass
class Counts:
    """Active subscribers by language: of one event, and of all notices."""

    event: dict[str, int]
    everything: dict[str, int]


def _by_locale(*where: object) -> dict[str, int]:
    found = dict(db.session.execute(
        select(Subscription.locale, func.count()).where(
            Subscription.status == SubscriptionStatus.ACTIVE, *where)
        .group_by(Subscription.locale)).all())
    return {locale: found.get(locale, 0) for locale in LOCALES}


def counts(event_id: int) -> Counts:
    return Counts(_by_locale(Subscription.scope == scope_for(event_id)),
                  _by_locale(Subscription.scope == ALL))


# ----------------------------------------------------------------------------- erasure, retention

def erase_addresses(emails: list[str]) -> int:
    """Remove every subscription and code of these addresses (an erasure of a person);
    their deliveries go with them. Returns how many subscriptions were removed."""
    folded = sorted({fold(e) for e in emails if e and e.strip()})
    if not folded:
        return 0
    ids = list(db.session.scalars(select(Subscription.id).where(
        Subscription.email.in_(folded))))
    _remove(ids, "erasure")
    db.session.execute(delete(SubscriptionCode).where(SubscriptionCode.email.in_(folded)))
    return len(ids)


def _remove(ids: list[int], reason: str) -> None:
    """Delete the subscriptions and their deliveries, one audit entry each (``reason``:
    erasure, expired, unsubscribed, retention)."""
    from portal.subscriptions.models import SubscriptionDelivery

    if not ids:
        return
    db.session.execute(delete(SubscriptionDelivery).where(
        SubscriptionDelivery.subscription_id.in_(ids)))
    db.session.execute(delete(Subscription).where(Subscription.id.in_(ids)))
    audit.record_many("subscription.remove", SUBJECT, [
        (i, N_("Subscription #%(id)d removed (%(why)s)", id=i,
               why=term("subscription_removal", reason)), None) for i in ids])


def purge(now: datetime | None = None) -> int:
    """Retention: unconfirmed subscriptions whose link expired, and ended ones older than
    ``SUBSCRIPTION_KEEP_UNSUBSCRIBED_DAYS``, are deleted with their deliveries."""
    now = now or utcnow()
    keep = timedelta(days=int(current_app.config["SUBSCRIPTION_KEEP_UNSUBSCRIBED_DAYS"]))
    expired = list(db.session.scalars(select(Subscription.id).where(
        Subscription.status == SubscriptionStatus.PENDING, Subscription.expires_at < now)))
    ended = list(db.session.scalars(select(Subscription.id).where(
        Subscription.status == SubscriptionStatus.UNSUBSCRIBED,
        Subscription.unsubscribed_at < now - keep)))
    _remove(expired, "expired")
    _remove(ended, "unsubscribed")
    db.session.execute(delete(SubscriptionCode).where(
        SubscriptionCode.created_at < now - timedelta(days=1), SubscriptionCode.mail.is_(None)))
    return len(expired) + len(ended)


def drop_for_event(event_id: int) -> int:
    """Retention of an event: its subscriptions go with its customers' data."""
    ids = list(db.session.scalars(select(Subscription.id).where(
        Subscription.event_id == event_id)))
    _remove(ids, "retention")
    return len(ids)
