"""Staff pages for events: list, open, edit, move through phases, and the settings (checklist
templates, response targets). The event's own page is the command centre (``portal.centre``)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.accounts import Role
from portal.errors import RuleViolation
from portal.events import services
from portal.events.forms import (
    EventEditForm,
    EventForm,
    StatusForm,
    TemplateItemForm,
)
from portal.events.models import (
    DEPARTMENT_LABELS,
    LABELS,
    SEVERITIES,
    TARGET_METRICS,
    ChecklistTemplateItem,
    Event,
    EventKind,
)
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.security import STAFF, access
from portal.web import database_int, refuse

bp = Blueprint("events", __name__, url_prefix="/events")


@bp.app_context_processor
def event_labels() -> dict[str, object]:
    return {"event_labels": LABELS}


@bp.route("/")
@access(STAFF)
def index() -> ResponseReturnValue:
    events = db.session.scalars(select(Event).order_by(Event.id.desc())).all()
    return render_template("events/index.html", events=events)


@bp.route("/new", methods=["GET", "POST"])
@access(Role.ADMIN)
def create() -> ResponseReturnValue:
    form = EventForm()
    if form.validate_on_submit():
        try:
            event = services.create_event(
                title=form.title.data, kind=form.kind.data, severity=form.severity.data,
                cause=form.cause.data, summary=form.summary.data or "", actor=current_user,
                with_checklist=bool(form.with_checklist.data), titles=form.titles(),
                accepts_claims=bool(form.accepts_claims.data),
                self_service=bool(form.self_service.data))
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Event %(title)s opened.", title=event.title), "success")
            return redirect(url_for("centre.detail", event_id=event.id))
    return render_template("events/form.html", form=form, event=None), (
        422 if form.errors else 200)


@bp.route("/settings", methods=["GET", "POST"])
@access(Role.ADMIN)
def settings() -> ResponseReturnValue:
    """Checklist templates and response targets."""
    if "default_position" in request.form:
        return _delete_default_template_item()
    form = TemplateItemForm()
    if form.validate_on_submit():
        try:
            services.add_template_item(kind=form.kind.data, department=form.department.data,
                                       title=form.title.data, due_hours=form.due_hours.data,
                                       actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Task “%(title)s” added to the %(kind)s checklist template.",
                    title=form.title.data.strip(), kind=LABELS[form.kind.data]), "success")
            return redirect(url_for("events.settings"))
    templates = {kind.value: services.shown_checklist_template(kind.value) for kind in EventKind}
    return render_template("events/settings.html", form=form, templates=templates,
                           targets=services.target_minutes(), confirm=ConfirmForm(),
                           department_labels=DEPARTMENT_LABELS, metric_labels=TARGET_METRICS,
                           severities=SEVERITIES), 422 if form.errors else 200


def _delete_default_template_item() -> ResponseReturnValue:
    """Remove one of the defaults a kind shows before its template is stored."""
    if ConfirmForm().validate_on_submit():
        item = services.stored_template_item(
            request.form.get("default_kind", ""),
            request.form.get("default_position", -1, type=database_int))
        if item is None:
            abort(404)
        _delete_template_item(item)
    return redirect(url_for("events.settings"))


@bp.route("/settings/items/<int:item_id>/delete", methods=["POST"])
@access(Role.ADMIN)
def delete_template_item(item_id: int) -> ResponseReturnValue:
    item = db.get_or_404(ChecklistTemplateItem, item_id)
    if ConfirmForm().validate_on_submit():
        _delete_template_item(item)
    return redirect(url_for("events.settings"))


def _delete_template_item(item: ChecklistTemplateItem) -> None:
    message = _("Task “%(title)s” removed from the %(kind)s checklist template.",
                title=item.title, kind=LABELS.get(item.kind, item.kind))
    services.delete_template_item(item, actor=current_user)
    flash(message, "success")


@bp.route("/settings/targets", methods=["POST"])
@access(Role.ADMIN)
def save_targets() -> ResponseReturnValue:
    values: dict[tuple[str, str], int | None] = {}
    for severity in SEVERITIES:
        for metric in TARGET_METRICS:
            raw = (request.form.get(f"{severity}-{metric}") or "").strip()
            if raw and not raw.isdigit():
                flash(_("Minutes must be a whole number."), "error")
                return redirect(url_for("events.settings"))
            values[(severity, metric)] = int(raw) if raw else None
    try:
        services.set_targets(values, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        flash(_("Response targets saved for every severity."), "success")
    return redirect(url_for("events.settings"))


@bp.route("/<int:event_id>/edit", methods=["GET", "POST"])
@access(Role.ADMIN)
def edit(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = EventEditForm(obj=event)
    if form.validate_on_submit():
        try:
            services.update_event(event, title=form.title.data, severity=form.severity.data,
                                  cause=form.cause.data, summary=form.summary.data or "",
                                  actor=current_user, titles=form.titles(),
                                  accepts_claims=bool(form.accepts_claims.data),
                                  self_service=bool(form.self_service.data))
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Event %(title)s saved.", title=event.title), "success")
            return redirect(url_for("centre.detail", event_id=event.id))
    return render_template("events/form.html", form=form, event=event), (
        422 if form.errors else 200)


@bp.route("/<int:event_id>/status", methods=["POST"])
@access(Role.ADMIN, when=services.may_change_status)
def change_status(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = StatusForm()
    form.status.choices = [(s, LABELS[s]) for s in services.next_statuses(event)]
    try:
        if not form.validate_on_submit():
            raise RuleViolation(_("An event moves one phase at a time."))
        services.change_status(event, form.status.data, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        flash(_("Event %(title)s moved to “%(status)s”.", title=event.title,
                status=LABELS[event.status]), "success")
    return redirect(url_for("centre.detail", event_id=event.id))
