"""Staff pages of the communications: the update cadence (admin) and the communication
metrics with their CSV. The lead is set on the event's page (``portal.centre``)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal import exports, uow
from portal.accounts import Role
from portal.comms import metrics
from portal.comms import settings as cadence_settings
from portal.events.models import SEVERITIES, TARGET_METRICS
from portal.security import STAFF, access

bp = Blueprint("comms", __name__, url_prefix="/events")


def minutes_text(minutes: int | None) -> str:
    """A span of whole minutes as people say it: 45 min, 2 h 05 min, 1 d 3 h."""
    if minutes is None:
        return "—"
    hours, mins = divmod(int(minutes), 60)
    days, hours = divmod(hours, 24)
    if days:
        return _("%(d)d d %(h)d h", d=days, h=hours)
    if hours:
        return _("%(h)d h %(m)02d min", h=hours, m=mins)
    return _("%(m)d min", m=mins)


bp.add_app_template_filter(minutes_text, "minutes_text")


@bp.route("/settings/cadence", methods=["GET", "POST"])
@access(Role.ADMIN)
def settings() -> ResponseReturnValue:
    """Per severity: the next public update is due within this many minutes."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            changed = cadence_settings.save_cadence(
                {s: request.form.get(cadence_settings.field_name(s)) for s in SEVERITIES},
                actor=current_user)
        except cadence_settings.InvalidCadence as err:
            uow.rollback()
            errors = err.errors
        else:
            flash(_("Update cadence saved: minutes per severity.") if changed
                  else _("The update cadence already was this; nothing changed."),
                  "success" if changed else "info")
            return redirect(url_for("comms.settings"))
    return render_template(
        "comms/settings.html", errors=errors, form=request.form,
        cadence=cadence_settings.cadence(), field_name=cadence_settings.field_name,
        lead_minutes=cadence_settings.REMINDER_LEAD_MINUTES,
        max_minutes=cadence_settings.MAX_MINUTES), 422 if errors else 200


@bp.route("/communications")
@access(STAFF)
def metrics_page() -> ResponseReturnValue:
    """The communication figures of every event and of each severity."""
    rows = metrics.for_events(metrics.all_events())
    return render_template("comms/metrics.html", rows=rows, severities=metrics.by_severity(rows),
                           metric_labels=TARGET_METRICS, target_label=metrics.target_label)


@bp.route("/communications.csv")
@access(STAFF)
def metrics_csv() -> ResponseReturnValue:
    return exports.response("communication-metrics.csv",
                            metrics.export_csv(metrics.for_events(metrics.all_events())))


@bp.route("/communications-by-severity.csv")
@access(STAFF)
def metrics_severity_csv() -> ResponseReturnValue:
    rows = metrics.by_severity(metrics.for_events(metrics.all_events()))
    return exports.response("communication-metrics-by-severity.csv",
                            metrics.export_severity_csv(rows))
