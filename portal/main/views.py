"""The staff dashboard and the language switch."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from portal.accounts import User
from portal.audit import services as audit
from portal.audit.models import AuditEntry, AuditVerification
from portal.auth import services as auth_services
from portal.cases import services as case_services
from portal.cases.models import Case
from portal.centre import services as command_centre
from portal.config import LOCALES
from portal.events.models import TARGET_METRICS, Event
from portal.extensions import db
from portal.i18n import LOCALE_COOKIE
from portal.main import services as dashboard_services
from portal.notices import services as notice_services
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


@bp.route("/dashboard")
@access(STAFF)
def dashboard() -> ResponseReturnValue:
    figures = {
        "open_events": db.session.scalar(
            select(func.count(Event.id)).where(Event.status != "closed")
        ),
        "active_staff": db.session.scalar(select(func.count(User.id)).where(User.active.is_(True))),
        "audit_entries": db.session.scalar(select(func.count(AuditEntry.id))),
    }
    events = db.session.scalars(
        select(Event).where(Event.status != "closed").order_by(Event.severity, Event.id.desc())
    ).all()
    latest_check = db.session.scalar(
        select(AuditVerification).order_by(AuditVerification.id.desc())
    )
    recent = audit.history("user", current_user.id, limit=5)
    money = dashboard_services.amounts_by_event()
    return render_template(
        "main/dashboard.html", figures=figures, events=events, latest_check=latest_check,
        recent=recent, pending_signoffs=signoffs.queue(),
        case_counts=case_services.open_counts_by_status(),
        overdue_cases=db.session.scalar(case_services.CaseFilter(overdue=True).statement()
                                        .with_only_columns(func.count(Case.id))
                                        .order_by(None)),
        overdue=signoffs.overdue_retroactive(),
        emergencies=notice_services.emergency_publications_awaiting_review(),
        missed_targets=command_centre.missed_targets(), metric_labels=TARGET_METRICS,
        status_chart=dashboard_services.open_cases_by_status(),
        money=money, money_scale=dashboard_services.amounts_scale(money),
        breaches=dashboard_services.sla_breaches(),
        signoff_ages=dashboard_services.signoff_ages(),
        deliveries=dashboard_services.mailing_delivery(),
    )


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
