"""The customer page, ``/my``: reached by a link, never by a staff account.

- ``GET /my/<token>``: follows a personal or one-time link (``portal.customers.links``), sets
  the customer session cookie (``portal.customers.session``) and redirects to ``/my``, so
  the token stays neither in the history nor in a Referer. A link that opens nothing gets a
  page in the customer's language saying why and what to do (the "Check my case" form).
- ``GET /my``: the customer's notices and cases, with each case's panels
  (``portal.my.panels``); ``POST /my/cases/<id>/reply``: a message on a case.
- ``GET|POST /my/check``: "Check my case": e-mail + ref → a one-time link by e-mail; one
  answer and one timing for every input; rate-limited per client and per address.
- ``POST /my/language``, ``POST /my/leave``: the language switch and leaving the page.

Every request under /my is held to ``MY_MAX_REQUEST_BYTES`` and answered, when it goes wrong,
with a page in the customer's language (``templates/my/error.html``) and no staff data.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal import uow
from portal.cases import customer_side
from portal.cases.models import Case
from portal.config import LOCALES
from portal.customers import links
from portal.customers import session as customer_session
from portal.customers.models import Customer
from portal.customers.session import current_customer, customer_required
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import csrf, db, limiter
from portal.i18n import locale_code
from portal.my import lookup, panels
from portal.my.forms import CheckForm, ReplyForm
from portal.notices import services as notices
from portal.security import PUBLIC, access
from portal.web import ERROR_TITLES, refuse

bp = Blueprint("my", __name__, url_prefix="/my")


# --- every request under /my ---------------------------------------------------------------


@bp.url_value_preprocessor
def _hold_to_size(_endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Before anything reads the body (the CSRF check does): the customer page's own limit."""
    limit = int(current_app.config["MY_MAX_REQUEST_BYTES"])
    request.max_content_length = limit
    if (request.content_length or 0) > limit:
        abort(413)


@bp.after_request
def _no_referrer(response: Any) -> Any:
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


ERROR_TEXTS = {
    400: lambda: _("Something in what your browser sent did not fit. Go back, reload the page "
                   "and try again."),
    404: lambda: _("There is nothing here. Open the link in your latest e-mail again, or ask "
                   "for a new link below."),
    413: lambda: _("What you sent is too large: at most %(mb)d MB at a time. Send less and try "
                   "again.", mb=int(current_app.config["MY_MAX_REQUEST_BYTES"]) // 2**20),
    429: lambda: _("Too many requests in a short time. Wait an hour and try again, or call "
                   "us."),
}


def _error(code: int, text: str | None = None) -> ResponseReturnValue:
    return render_template("my/error.html", code=code, title=ERROR_TITLES.get(code),
                           text=text or ERROR_TEXTS.get(
        code, lambda: _("Something went wrong on our side and nothing was saved. Try again "
                        "in a moment."))(), form=CheckForm(formdata=None),
                           hotline=current_app.config["PORTAL_CONTACT_PHONE"]), code


@bp.errorhandler(CSRFError)
def _csrf_error(_err: CSRFError) -> ResponseReturnValue:
    return _error(400, _("The page was open too long or came from elsewhere. Go back, reload "
                         "the page and send it again."))


@bp.errorhandler(RateLimitExceeded)
def _too_many(_err: RateLimitExceeded) -> ResponseReturnValue:
    return _error(429)


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException) -> ResponseReturnValue:
    if err.code and err.code < 400:
        return err
    return _error(err.code or 500)


# --- following a link ----------------------------------------------------------------------


@bp.route("/<token>")
@access(PUBLIC)
def follow(token: str) -> ResponseReturnValue:
    found = links.follow(token)
    if found.problem is not None:
        uow.rollback()
        locale = found.link.customer.locale if found.link is not None else None
        with force_locale(locale if locale in LOCALES else locale_code()):
            html = render_template("my/link_problem.html", problem=found.problem,
                                   form=CheckForm(formdata=None),
                                   hotline=current_app.config["PORTAL_CONTACT_PHONE"])
        return html, links.PROBLEM_STATUS[found.problem]
    customer, link_id = found.link.customer, found.link.id
    uow.commit()  # a GET, but the visit is the customer's audited action (a one-time link spent)
    response = redirect(url_for("my.page"), 303)
    return customer_session.start(response, customer, link_id)


# --- the page ------------------------------------------------------------------------------


def render_page(customer: Customer, reply_forms: dict[int, ReplyForm] | None = None,
                 status: int = 200) -> ResponseReturnValue:
    cases = customer_side.cases_of(customer)
    shown = notices.public_notices(customer.event_id)
    shown.sort(key=lambda n: n.last_published_at, reverse=True)
    forms = reply_forms or {}
    return render_template(
        "my/page.html", customer=customer, event=db.session.get(Event, customer.event_id),
        cases=cases, notices=shown, customer_side=customer_side,
        panels={case.id: panels.case_panels(case, customer) for case in cases},
        sections=panels.page_sections(customer),
        reply_forms={case.id: forms.get(case.id) or ReplyForm(formdata=None)
                     for case in cases},
    ), status


@bp.route("")
@access(PUBLIC)
@customer_required
def page() -> ResponseReturnValue:
    return render_page(current_customer())


def _customer_key() -> str:
    found = customer_session.read_cookie()
    return f"my-customer:{found.customer_id}" if found else f"my-ip:{request.remote_addr}"


@bp.route("/cases/<int:case_id>/reply", methods=["POST"])
@access(PUBLIC)
@customer_required
@limiter.limit(lambda: current_app.config["MY_REPLY_LIMIT"], key_func=_customer_key)
def reply(case_id: int) -> ResponseReturnValue:
    customer = current_customer()
    case: Case | None = customer_side.case_of(customer, case_id)
    if case is None:  # none, or another customer's: the same answer
        abort(404)
    form = ReplyForm()
    if form.validate_on_submit():
        try:
            customer_side.add_customer_message(case, customer, form.body.data)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Your message on case %(ref)s was sent; we will answer by e-mail and "
                    "here.", ref=case.ref), "success")
            return redirect(url_for("my.page", _anchor=f"case-{case.ref}"))
    return render_page(customer, {case.id: form}, 422)


@bp.route("/language", methods=["POST"])
@access(PUBLIC)
@customer_required
def language() -> ResponseReturnValue:
    found = customer_session.read_cookie()
    response = redirect(url_for("my.page"), 303)
    return customer_session.start(response, current_customer(), found.link_id,
                                  request.form.get("locale"), started=found.started)


@bp.route("/leave", methods=["POST"])
@access(PUBLIC)
def leave() -> ResponseReturnValue:
    return customer_session.end(redirect(url_for("my.check", left=1), 303))


# --- "Check my case" ---------------------------------------------------------------------------


def _event_id() -> int | None:
    raw = request.values.get("event", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


def _from_this_site() -> bool:
    """The POST came from a page of this site (the CSRF check of a form that cached public
    pages carry without a token): its Origin, else its Referer, names this host."""
    source = request.headers.get("Origin") or request.referrer or ""
    host = urlsplit(source).netloc
    return bool(host) and host in {request.host,
                                   urlsplit(current_app.config["PORTAL_BASE_URL"]).netloc}


@bp.route("/check")
@access(PUBLIC)
def check() -> ResponseReturnValue:
    return render_template("my/check.html", form=CheckForm(formdata=None), event_id=_event_id(),
                           again=request.args.get("again") == "1",
                           left=request.args.get("left") == "1")


@bp.route("/check", methods=["POST"])
@access(PUBLIC)
@csrf.exempt  # on cached public pages: checked by _from_this_site instead
@limiter.limit(lambda: current_app.config["MY_CHECK_LIMIT_PER_IP"])
@limiter.limit(lambda: current_app.config["MY_CHECK_LIMIT_PER_ADDRESS"],
               key_func=lambda: lookup.address_key(request.form.get("email", "")))
def check_request() -> ResponseReturnValue:
    """One answer page, in one time, for every well-formed input: found or not."""
    started = time.monotonic()
    if not _from_this_site():
        return _error(400, _("This form must be sent from our own pages. Open the notice page "
                             "again and send it from there."))
    form = CheckForm()
    event_id = _event_id()
    if not form.validate():
        return render_template("my/check.html", form=form, event_id=event_id), 422
    lookup.request_link(form.email.data, form.ref.data, event_id)
    uow.commit()  # inside the padded time: the commit and, on a match, queueing the e-mail
    time.sleep(max(0.0, float(current_app.config["MY_CHECK_SECONDS"])
                   - (time.monotonic() - started)))
    return render_template("my/check_sent.html", event_id=event_id)
