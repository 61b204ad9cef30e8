"""The staff dashboard, the language switch and the favicon."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from portal.audit import services as audit
from portal.auth import services as auth_services
from portal.centre import services as command_centre
from portal.comms import services as comms
from portal.config import LOCALES
from portal.events.models import TARGET_METRICS
from portal.i18n import LOCALE_COOKIE
from portal.main import my_work
from portal.main import search as customer_search
from portal.main import services as dashboard_services
from portal.notices import publishing as notice_publishing
from portal.redirects import safe_next
from portal.security import PUBLIC, STAFF, access
from portal.signoffs import services as signoffs

bp = Blueprint("main", __name__)


@bp.route("/")
@access(PUBLIC)
def index() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    return redirect(url_for("auth.login"))


@bp.app_context_processor
def navigation() -> dict[str, object]:
    """The count beside "Dashboard": computed only when a page draws it, once a request."""
    return {"my_work_count": my_work.nav_count}


@bp.route("/favicon.ico")
@access(PUBLIC)
def favicon() -> ResponseReturnValue:
    """Where browsers look without a ``<link rel=icon>`` (partials, PDFs, downloads)."""
    return current_app.send_static_file("favicon.ico")


@bp.route("/dashboard")
@access(STAFF)
def dashboard() -> ResponseReturnValue:
    """The landing page after sign-in: the signed-in person's own work first, then the
    figures every role shares."""
    recent = audit.history("user", current_user.id, limit=5)
    money = dashboard_services.amounts_by_event()
    work = my_work.for_user(current_user)
    return render_template(
        "main/dashboard.html", work=work, figures=dashboard_services.figures(),
        events=dashboard_services.open_events(),
        latest_check=dashboard_services.latest_verification(),
        recent=recent, pending_signoffs=signoffs.queue(),
        overdue=signoffs.overdue_retroactive(),
        emergencies=notice_publishing.emergency_publications_awaiting_review(),
        # An admin's own work lists them already.
        missed_targets=[] if work.has("missed_targets") else command_centre.missed_targets(),
        metric_labels=TARGET_METRICS, clocks=comms.live_clocks(),
        status_chart=dashboard_services.open_cases_by_status(),
        money=money, money_scale=dashboard_services.amounts_scale(money),
        breaches=dashboard_services.sla_breaches(),
        signoff_ages=dashboard_services.signoff_ages(),
        deliveries=dashboard_services.mailing_delivery(),
    )


@bp.route("/search")
@access(STAFF)  # whoever may open a customer's page (``customers.detail``)
def search() -> ResponseReturnValue:
    query = (request.args.get("q") or "").strip()[:100]
    found = customer_search.find(query)
    if found.target is not None:
        endpoint, args = found.target
        return redirect(url_for(endpoint, **args))
    return render_template("main/search.html", q=query, found=found)


@bp.route("/language", methods=["POST"])
@access(PUBLIC)
def set_language() -> ResponseReturnValue:
    """The visible switch: a cookie for visitors, the profile for signed-in staff."""
    locale = request.form.get("locale", "")
    if locale not in LOCALES:
        abort(400)
    if current_user.is_authenticated:
        auth_services.update_profile(current_user, name=current_user.name, locale=locale)
    response = redirect(safe_next(request.form.get("next"), "main.index"))
    response.set_cookie(LOCALE_COOKIE, locale, max_age=365 * 24 * 3600, samesite="Lax",
                        httponly=True)
    return response
