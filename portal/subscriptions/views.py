"""Public subscription pages: subscribe (from the notice list and pages), confirm, manage with
the signed link or a one-time code, unsubscribe (one click); and the staff figures.

Every answer to "subscribe" and "send me a code" is the same page in the same time, known
address or not: the e-mails go out from jobs. Not cached: these pages carry forms."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address

from portal import jobs, uow
from portal.config import LOCALES
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import csrf, db, limiter
from portal.i18n import locale_code
from portal.notices import services as notices
from portal.security import PUBLIC, STAFF, access
from portal.subscriptions import services, tasks
from portal.subscriptions.forms import ChangeForm, CodeForm, CodeRequestForm, SubscribeForm
from portal.subscriptions.models import Subscription, SubscriptionStatus
from portal.web import refuse

bp = Blueprint("subscriptions", __name__)
NO_STORE = {"Cache-Control": "no-store"}


def _page(template: str, status: int = 200, **context: object) -> Response:
    return Response(render_template(template, **context), status, headers=NO_STORE)


def _address_key() -> str:
    """The per-address limit's key: a digest of the folded address (the IP when none), so
    Redis holds no address."""
    email = services.fold(request.form.get("email", ""))
    if not email:
        return f"subscription-ip:{get_remote_address()}"
    return "subscription-address:" + hashlib.sha256(email.encode()).hexdigest()


def _from_this_site() -> bool:
    source = request.headers.get("Origin") or request.referrer or ""
    host = urlsplit(source).netloc
    return bool(host) and host in {request.host,
                                   urlsplit(current_app.config["PORTAL_BASE_URL"]).netloc}


def _events(locale: str) -> list[tuple[int, str]]:
    return notices.public_events(locale)


def _pad(started: float) -> None:
    """Every answer of a form that must not tell known addresses from new ones takes the
    same time (the commit and the queueing included)."""
    time.sleep(max(0.0, float(current_app.config["SUBSCRIPTION_ANSWER_SECONDS"])
                   - (time.monotonic() - started)))


@bp.route("/subscribe", methods=["GET", "POST"])
@access(PUBLIC)
@csrf.exempt  # the form is on cached public pages: checked by _from_this_site instead
@limiter.limit(lambda: current_app.config["SUBSCRIBE_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(lambda: current_app.config["SUBSCRIBE_LIMIT_PER_ADDRESS"], methods=["POST"],
               key_func=_address_key)
def subscribe() -> ResponseReturnValue:
    locale = locale_code()
    form = SubscribeForm(formdata=request.form if request.method == "POST" else None,
                         event=request.args.get("event", ""), locale=locale)
    context = {"form": form, "locale": locale, "events": _events(locale)}
    if request.method == "GET":
        return _page("subscriptions/subscribe.html", event_id=form.event_id(), **context)
    started = time.monotonic()
    if not _from_this_site():
        return _page("subscriptions/subscribe.html", 400, event_id=form.event_id(),
                     problem=_("This form must be sent from our own pages. Open the notice "
                               "page again and send it from there."), **context)
    if form.validate():
        try:
            subscription_id = services.subscribe(form.email.data, form.event_id(),
                                                 form.locale.data)
        except RuleViolation as err:
            refuse(err, form)
        else:
            if subscription_id:
                jobs.enqueue_after_commit(tasks.queue_mail, subscription_id)
            uow.commit()  # inside the padded time, as the queueing after it
            _pad(started)
            return _page("subscriptions/sent.html", locale=locale, step="subscribe")
    return _page("subscriptions/subscribe.html", 422, event_id=form.event_id(), **context)


@bp.route("/subscriptions/confirm/<token>", methods=["GET", "POST"])
@access(PUBLIC)
def confirm(token: str) -> ResponseReturnValue:
    """The link in the confirmation e-mail: GET asks (link scanners confirm nothing), POST
    confirms. An expired or forged link gets a page saying what to do."""
    row, problem = services.for_confirmation(token)
    if row is None or row.status == SubscriptionStatus.UNSUBSCRIBED:
        return _page("subscriptions/confirm.html", 410 if problem == "expired" else 404,
                     step=problem or "invalid", locale=locale_code())
    with force_locale(_locale_for(row)):
        if request.method == "POST":
            services.confirm(row)
        step = "ask" if row.status == SubscriptionStatus.PENDING else "confirmed"
        return _page("subscriptions/confirm.html", step=step, row=row, token=token,
                     manage_token=services.manage_token(row), locale=_locale_for(row))


def _locale_for(row: Subscription) -> str:
    asked = request.args.get("lang", "")
    return asked if asked in LOCALES else row.locale


@bp.route("/subscriptions/manage", methods=["GET", "POST"])
@access(PUBLIC)
@limiter.limit(lambda: current_app.config["SUBSCRIBE_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(lambda: current_app.config["SUBSCRIBE_LIMIT_PER_ADDRESS"], methods=["POST"],
               key_func=_address_key)
def manage() -> ResponseReturnValue:
    """Ask for a one-time code: the same answer for every address."""
    locale = locale_code()
    form = CodeRequestForm()
    if form.validate_on_submit():
        started = time.monotonic()
        services.request_code(form.email.data, locale)
        code_id = services.code_id_for(form.email.data)
        if code_id:
            jobs.enqueue_after_commit(tasks.queue_code, code_id)
        uow.commit()
        _pad(started)
        return _page("subscriptions/code.html", form=CodeForm(formdata=None,
                                                             email=form.email.data),
                     locale=locale)
    return _page("subscriptions/manage.html", 422 if form.errors else 200, form=form,
                 locale=locale)


@bp.route("/subscriptions/manage/code", methods=["POST"])
@access(PUBLIC)
@limiter.limit(lambda: current_app.config["SUBSCRIPTION_CODE_LIMIT_PER_IP"])
def redeem() -> ResponseReturnValue:
    """The one-time code: right, the address's subscriptions with their signed links."""
    locale = locale_code()
    form = CodeForm()
    if form.validate_on_submit():
        found = services.redeem_code(form.email.data or "", form.code.data)
        uow.commit()  # the attempt counts even when the code is wrong
        if found is not None:
            return _page("subscriptions/mine.html", locale=locale, rows=[
                (row, services.manage_token(row)) for row in found])
        form.code.errors = [_("This code is wrong, used or expired. Ask for a new one.")]
    return _page("subscriptions/code.html", 422, form=form, locale=locale)


@bp.route("/subscriptions/<token>", methods=["GET", "POST"])
@access(PUBLIC)
def subscription(token: str) -> ResponseReturnValue:
    """One subscription, reached by the signed link in every message: its language and
    scope, and unsubscribing."""
    row = services.for_manage_token(token)
    if row is None:
        abort(404)
    locale = _locale_for(row)
    with force_locale(locale):
        events = _events(locale)
        form = ChangeForm(formdata=request.form if request.method == "POST" else None,
                          locale=row.locale, event=str(row.event_id or ""))
        form.event.choices = [("", _("All notices"))] + [(str(i), t) for i, t in events]
        changed = False
        if request.method == "POST" and form.validate():
            try:
                changed = services.change(row, locale=form.locale.data,
                                          event_id=form.event_id())
            except RuleViolation as err:
                refuse(err, form)
        return _page("subscriptions/subscription.html", 422 if form.errors else 200,
                     row=row, token=token, form=form, changed=changed, locale=locale)


@bp.route("/subscriptions/<token>/unsubscribe", methods=["GET", "POST"])
@access(PUBLIC)
@csrf.exempt  # the signed token is the credential; mail providers POST here (RFC 8058)
def unsubscribe(token: str) -> ResponseReturnValue:
    row = services.for_manage_token(token)
    if row is None:
        abort(404)
    if request.method == "POST":
        services.unsubscribe(row, via="one-click" if request.form.get(
            "List-Unsubscribe") == "One-Click" else "unsubscribe page")
    with force_locale(_locale_for(row)):
        return _page("subscriptions/unsubscribe.html", row=row, token=token,
                     done=row.status == SubscriptionStatus.UNSUBSCRIBED,
                     locale=_locale_for(row))


@bp.route("/events/<int:event_id>/subscribers")
@access(STAFF)
def counts(event_id: int) -> ResponseReturnValue:
    """Staff: how many confirmed subscribers the event has, per language (no addresses)."""
    event = db.get_or_404(Event, event_id)
    return render_template("subscriptions/counts.html", event=event,
                           counts=services.counts(event.id), locales=LOCALES)
