"""Staff pages for events: list, open, edit, move through phases, and their notices."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.audit import services as audit
from portal.auth.models import Role
from portal.errors import RuleViolation
from portal.events import services
from portal.events.forms import EventEditForm, EventForm, StatusForm
from portal.events.models import LABELS, Event
from portal.extensions import db
from portal.security import STAFF, access
from portal.web import show_error

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
                cause=form.cause.data, summary=form.summary.data or "", actor=current_user)
        except RuleViolation as err:
            db.session.rollback()
            show_error(form, err)
        else:
            flash(_("Event opened."), "success")
            return redirect(url_for("events.detail", event_id=event.id))
    return render_template("events/form.html", form=form, event=None), (
        422 if form.errors else 200)


@bp.route("/<int:event_id>")
@access(STAFF)
def detail(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    status_form = StatusForm()
    status_form.status.choices = [(s, LABELS[s]) for s in services.next_statuses(event)]
    return render_template("events/detail.html", event=event, status_form=status_form,
                           history=audit.history("event", event.id))


@bp.route("/<int:event_id>/edit", methods=["GET", "POST"])
@access(Role.ADMIN)
def edit(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = EventEditForm(obj=event)
    if form.validate_on_submit():
        try:
            services.update_event(event, title=form.title.data, severity=form.severity.data,
                                  cause=form.cause.data, summary=form.summary.data or "",
                                  actor=current_user)
        except RuleViolation as err:
            db.session.rollback()
            show_error(form, err)
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("events.detail", event_id=event.id))
    return render_template("events/form.html", form=form, event=event), (
        422 if form.errors else 200)


@bp.route("/<int:event_id>/status", methods=["POST"])
@access(Role.ADMIN)
def change_status(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = StatusForm()
    form.status.choices = [(s, LABELS[s]) for s in services.next_statuses(event)]
    try:
        if not form.validate_on_submit():
            raise RuleViolation(_("An event moves one phase at a time."))
        services.change_status(event, form.status.data, actor=current_user)
    except RuleViolation as err:
        db.session.rollback()
        flash(err.message, "error")
    else:
        flash(_("Status changed."), "success")
    return redirect(url_for("events.detail", event_id=event.id))
