"""Public notice pages, PDFs and the Atom feed: cacheable, conditional, no staff data.

Their language comes from ``?lang=`` or Accept-Language only (never a cookie or a staff
profile), so a shared cache in front can key them by URL and Accept-Language.
"""

from __future__ import annotations

from datetime import datetime

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from sqlalchemy import select

from portal import documents, jobs, verification
from portal.cases import claim_tasks, claims
from portal.cases.forms import PublicClaimForm
from portal.config import LOCALES
from portal.errors import RuleViolation
from portal.extensions import csrf, db, limiter
from portal.i18n import locale_code
from portal.markdown import render_markdown
from portal.models import PdfStatus
from portal.notices import services
from portal.notices.models import Publication
from portal.public import modified
from portal.public import services as verifying
from portal.public.cache import CachedPage, page_cache
from portal.security import PUBLIC, access
from portal.web import database_int, refuse, render_error

bp = Blueprint("public", __name__)

def _locale() -> str:
    return locale_code()


def _respond(page: CachedPage) -> Response:
    """The cached page, or 304 when the client's copy is current; headers come prebuilt."""
    headers = request.headers
    if page.not_modified(headers.get("If-None-Match"), headers.get("If-Modified-Since")):
        return Response(status=304, headers=page.headers_304)
    return Response(page.body, headers=page.headers)


@bp.route("/notices")
@access(PUBLIC)
def index() -> ResponseReturnValue:
    locale = _locale()
    event_id = request.args.get("event", type=database_int)

    def render() -> tuple[str, datetime | None, str]:
        notices = services.public_notices(event_id)
        events = services.public_events(locale)
        html = render_template("public/index.html", notices=notices, locale=locale,
                               events=events, event_id=event_id)
        return html, modified.notice_list(event_id), "text/html"

    return _respond(page_cache().get_or_render(("index", locale, event_id), render))


@bp.route("/notices/<slug>")
@access(PUBLIC)
def notice(slug: str) -> ResponseReturnValue:
    locale = _locale()

    def render() -> tuple[str, datetime | None, str]:
        item = services.public_notice(slug)
        if item is None:
            abort(404)
        version = item.published_version
        shown_locale, entry = version.in_locale(locale)
        pdf = services.signed_pdfs(version.id).get(locale)  # this page's language's PDF
        pdf_ready = pdf is not None and pdf.status == PdfStatus.DONE
        html = render_template(
            "public/notice.html", notice=item, version=version, entry=entry,
            shown_locale=shown_locale, body_html=render_markdown(entry["body"]),
            publications=list(reversed(item.publications)), pdf_ready=pdf_ready,
            locale=locale,
            verification_code=verification.grouped(services.publication_code(version.id)),
        )
        return html, modified.notice_page(item), "text/html"

    return _respond(page_cache().get_or_render(("notice", slug, locale), render))


@bp.route("/notices/<slug>.pdf")
@access(PUBLIC)
def notice_pdf_file(slug: str) -> ResponseReturnValue:
    """The published version's stamped PDF in the reader's language, chosen as the page
    chooses it (``?lang=``, then Accept-Language); a language taken from the header makes the
    answer vary with it."""
    item = services.public_notice(slug)
    if item is None:
        abort(404)
    locale = _locale()
    row = services.signed_pdfs(item.published_version_id).get(locale)
    if row is not None and row.status == PdfStatus.FAILED:  # no retry to wait for: say so
        return Response(_("The PDF of this notice could not be made; read the notice on its "
                          "page.") + "\n", 503, {"Cache-Control": "no-store"},
                        mimetype="text/plain")
    if row is None or row.status != PdfStatus.DONE:
        return Response("The PDF is being prepared; try again in a minute.\n", 503,
                        {"Retry-After": "30", "Cache-Control": "no-store"},
                        mimetype="text/plain")
    path = documents.stored_path(row.sha256)
    response = send_file(path, mimetype="application/pdf", etag=row.sha256,
                         download_name=f"{item.ref}-{locale}.pdf", conditional=True,
                         max_age=300)
    response.cache_control.public = True
    if request.args.get("lang") not in LOCALES:
        response.vary.add("Accept-Language")
    return response


@bp.route("/notices/feed.atom")
@access(PUBLIC)
def feed() -> ResponseReturnValue:
    locale = _locale()

    def render() -> tuple[str, datetime | None, str]:
        publications = db.session.scalars(
            select(Publication).order_by(Publication.published_at.desc()).limit(100)
        ).all()
        visible = [p for p in publications if p.notice.publicly_visible][:50]
        entries = []
        for p in visible:
            shown_locale, entry = p.version.in_locale(locale)
            entries.append({"publication": p, "entry": entry, "locale": shown_locale,
                            "body_html": render_markdown(entry["body"])})
        updated = visible[0].published_at if visible else None
        xml = render_template("public/feed.atom.xml", entries=entries, updated=updated,
                              base=current_app.config["PORTAL_BASE_URL"],
                              self_url=url_for("public.feed", _external=False))
        return xml, updated, "application/atom+xml"

    return _respond(page_cache().get_or_render(("feed", locale), render))


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@access(PUBLIC)
@csrf.exempt  # the signed token in the URL is the credential; mail providers POST here
def unsubscribe(token: str) -> ResponseReturnValue:
    """The link in every mailing. GET asks (link scanners must not unsubscribe anyone); POST,
    from the page or a mail client's one-click (RFC 8058), records it."""
    from portal.mailings import unsubscribe as unsubscribing

    if token == unsubscribing.PREVIEW_TOKEN:  # from a staff preview or a test send: record nothing
        html = render_template("public/unsubscribe.html", preview=True)
        return Response(html, headers={"Cache-Control": "no-store"})
    customer = unsubscribing.customer_for_token(token)
    if customer is None:
        abort(404)
    done = False
    if request.method == "POST":
        unsubscribing.unsubscribe(customer, via="one-click" if request.form.get(
            "List-Unsubscribe") == "One-Click" else "unsubscribe page")
        done = True
    lang = request.args.get("lang", "").replace("-", "_")
    with force_locale(lang if lang in LOCALES else customer.locale):
        html = render_template("public/unsubscribe.html", customer=customer, token=token,
                               done=done or customer.unsubscribed_at is not None)
    return Response(html, headers={"Cache-Control": "no-store"})


# --- claims from a notice (not cached: each form carries its own CSRF token) -------------------


def _claim_address() -> str:
    """The rate limit's key per e-mail address (the client's address when none is given)."""
    email = (request.form.get("email") or "").strip().lower()[:254]
    return f"claim-address:{email}" if email else f"claim-ip:{get_remote_address()}"


def _claim_lang() -> dict[str, str]:
    """The page's language kept in the URLs that follow (public pages read no cookie)."""
    return {"lang": _locale()}


@bp.route("/notices/<slug>/claim", methods=["GET", "POST"])
@access(PUBLIC)
@limiter.limit(lambda: current_app.config["CLAIM_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(lambda: current_app.config["CLAIM_LIMIT_PER_ADDRESS"], methods=["POST"],
               key_func=_claim_address)
def claim(slug: str) -> ResponseReturnValue:
    """The claim form of a notice's event, for people not on the import list: whatever the
    address, the answer is the same page ("check your inbox")."""
    item = services.public_notice(slug)
    if item is None or not item.event.accepts_claims:
        abort(404)
    form = PublicClaimForm()
    if form.validate_on_submit():
        try:
            made = claims.submit_public(item.event, form.claimant(_locale()), form.claim_input())
        except RuleViolation as err:
            refuse(err, form)
        else:
            jobs.enqueue_after_commit(claim_tasks.queue_mail, made.id)
            return redirect(url_for("public.claim_sent", slug=slug, **_claim_lang()))
    html = render_template("public/claim.html", notice=item, form=form, locale=_locale(),
                           action=url_for("public.claim", slug=slug, **_claim_lang()))
    return Response(html, 422 if form.errors else 200, headers={"Cache-Control": "no-store"})


@bp.route("/notices/<slug>/claim/sent")
@access(PUBLIC)
def claim_sent(slug: str) -> ResponseReturnValue:
    item = services.public_notice(slug)
    if item is None:
        abort(404)
    html = render_template("public/claim_done.html", notice=item, step="sent")
    return Response(html, headers={"Cache-Control": "no-store"})


@bp.route("/claims/confirm/<token>", methods=["GET", "POST"])
@access(PUBLIC)
def claim_confirm(token: str) -> ResponseReturnValue:
    """The link in the confirmation e-mail. GET asks (link scanners must confirm nothing);
    POST confirms. An expired or forged link gets a page saying what to do."""
    found, problem = claims.claim_for_token(token)
    if found is None:
        html = render_template("public/claim_done.html", notice=None, step=problem)
        return Response(html, 410 if problem == "expired" else 404,
                        headers={"Cache-Control": "no-store"})
    if request.method == "POST":
        claims.confirm(found)
        html = render_template("public/claim_done.html", notice=None, step="confirmed")
    else:
        html = render_template("public/claim_done.html", notice=None,
                               step="confirmed" if found.confirmed_at else "ask",
                               action=url_for("public.claim_confirm", token=token,
                                              **_claim_lang()))
    return Response(html, headers={"Cache-Control": "no-store"})


# --- "is this really from us?" (not cached: rate-limited per client, answers vary by code) ---

VERIFY_ENDPOINTS = {"public.verify", "public.verify_code"}


def _verify_limit() -> str:
    return current_app.config["VERIFY_LIMIT_PER_IP"]


def _verify_page(text: str | None) -> Response:
    """The form, with the answer for ``text`` when one was given: what the code was issued
    for, that it is not ours, or (next to the field) that it cannot be a code."""
    locale = _locale()
    code, issued = verifying.look_up(text) if text is not None else (None, None)
    entry = body_html = None
    if issued is not None and issued.version is not None:  # a programme's letter: none
        _shown, entry = issued.version.in_locale(locale)
        body_html = render_markdown(entry["body"])
    if text is None:
        status = 200
    elif code is None:
        status = 422
    else:
        status = 200 if issued else 404
    html = render_template(
        "public/verify.html", locale=locale, typed=text or "", code=code, issued=issued,
        entry=entry, body_html=body_html, grouped=verification.grouped(code),
        **_report_to())
    return Response(html, status, headers={"Cache-Control": "no-store"})


def _report_to() -> dict[str, str]:
    """Where a reader reports what is not ours: the configured address, and its link (a web
    address as it is, an e-mail address as mailto:)."""
    report = current_app.config["VERIFY_REPORT_ADDRESS"]
    web = report.startswith(("https://", "http://"))
    return {"report": report, "report_link": report if web else f"mailto:{report}"}


@bp.route("/verify")
@access(PUBLIC)
@limiter.shared_limit(_verify_limit, scope="verify",
                      exempt_when=lambda: request.args.get("code") is None)
def verify() -> ResponseReturnValue:
    """The form (GET, so a result is a link one can share); ``?code=`` looks the code up."""
    return _verify_page(request.args.get("code"))


@bp.route("/verify/<code>")
@access(PUBLIC)
@limiter.shared_limit(_verify_limit, scope="verify")  # one allowance for the form and links
def verify_code(code: str) -> ResponseReturnValue:
    """The link in a mail footer and a PDF's QR code."""
    return _verify_page(code)


@bp.errorhandler(RateLimitExceeded)
def _too_many(_err: RateLimitExceeded) -> ResponseReturnValue:
    """The verify pages say it in the public layout; other public forms as before."""
    if request.endpoint not in VERIFY_ENDPOINTS:
        return render_error(429)
    html = render_template("public/verify.html", locale=_locale(), typed="", code=None,
                           issued=None, limited=True, **_report_to())
    return Response(html, 429, headers={"Cache-Control": "no-store", "Retry-After": "60"})
