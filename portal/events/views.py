"""Staff pages for events: list, open, edit, move through phases, and their notices."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal import uow
from portal.audit import services as audit
from portal.auth.models import Role, User
from portal.errors import RuleViolation
from portal.events import services
from portal.events.forms import (
    AssignForm,
    EventEditForm,
    EventForm,
    StakeholderForm,
    StatusForm,
    TaskForm,
    TemplateItemForm,
    TimelineForm,
)
from portal.events.models import (
    DEPARTMENT_LABELS,
    LABELS,
    SEVERITIES,
    STAKEHOLDER_KINDS,
    TARGET_METRICS,
    ChecklistTemplateItem,
    Event,
    EventKind,
    EventTask,
    Stakeholder,
)
from portal.extensions import db
from portal.i18n import local_to_utc, utc_to_local
from portal.security import STAFF, access
from portal.users.forms import ConfirmForm
from portal.web import database_int, refuse, wants_partial

bp = Blueprint("events", __name__, url_prefix="/events")
# Who writes the command centre; legal reads it and ticks its own tasks.
EDITORS = (Role.AGENT, Role.ADMIN)


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
                with_checklist=bool(form.with_checklist.data))
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Event opened."), "success")
            return redirect(url_for("events.detail", event_id=event.id))
    return render_template("events/form.html", form=form, event=None), (
        422 if form.errors else 200)


def _staff_choices() -> list[tuple[object, str]]:
    staff = db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name))
    return [("", "—")] + [(u.id, u.name) for u in staff]


def _centre(event: Event, **forms: object) -> dict[str, object]:
    """Everything the command centre shows, and its forms (those given replace the blank
    ones, to show their errors)."""
    status_form = StatusForm()
    status_form.status.choices = [(s, LABELS[s]) for s in services.next_statuses(event)]
    task_form = forms.get("task_form") or TaskForm()
    task_form.owner_id.choices = _staff_choices()
    return {
        "event": event, "status_form": status_form, "task_form": task_form,
        "timeline_form": forms.get("timeline_form") or TimelineForm(),
        "stakeholder_form": forms.get("stakeholder_form") or StakeholderForm(),
        "confirm": ConfirmForm(), "centre": services.command_centre(event),
        "history": audit.history("event", event.id),
        "department_labels": DEPARTMENT_LABELS, "metric_labels": TARGET_METRICS,
        "stakeholder_labels": STAKEHOLDER_KINDS, "local_input": _local_input,
    }


def _local_input(value: datetime | None) -> str:
    """A stored UTC time as a datetime-local input's value, in the reader's time zone."""
    local = utc_to_local(value)
    return local.strftime("%Y-%m-%dT%H:%M") if local else ""


@bp.route("/<int:event_id>")
@access(STAFF)
def detail(event_id: int) -> ResponseReturnValue:
    """The command centre: status, timeline, cases, sign-offs, checklist, targets, people."""
    event = db.get_or_404(Event, event_id)
    return render_template("events/detail.html", **_centre(event))


def _back(event: Event, anchor: str) -> ResponseReturnValue:
    if wants_partial(anchor):
        return render_template(f"events/_{anchor}.html", **_centre(event))
    return redirect(url_for("events.detail", event_id=event.id, _anchor=anchor))


def _invalid(event: Event, **forms: object) -> ResponseReturnValue:
    uow.rollback()
    return render_template("events/detail.html", **_centre(event, **forms)), 422


@bp.route("/<int:event_id>/tasks", methods=["POST"])
@access(*EDITORS)
def add_task(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = TaskForm()
    form.owner_id.choices = _staff_choices()
    if form.validate_on_submit():
        try:
            services.add_task(event, department=form.department.data, title=form.title.data,
                              owner_id=form.owner_id.data,
                              due_at=local_to_utc(form.due_at.data), actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Task added."), "success")
            return _back(event, "checklist")
    return _invalid(event, task_form=form)


@bp.route("/tasks/<int:task_id>/<any(done, reopen):state>", methods=["POST"])
@access(STAFF)
def task_done(task_id: int, state: str) -> ResponseReturnValue:
    task = db.get_or_404(EventTask, task_id)
    if ConfirmForm().validate_on_submit():
        services.set_task_done(task, state == "done", actor=current_user)
    return _back(db.session.get(Event, task.event_id), "checklist")


@bp.route("/tasks/<int:task_id>/assign", methods=["POST"])
@access(*EDITORS)
def assign_task(task_id: int) -> ResponseReturnValue:
    task = db.get_or_404(EventTask, task_id)
    form = AssignForm()
    form.owner_id.choices = _staff_choices()
    event = db.session.get(Event, task.event_id)
    if form.validate_on_submit():
        try:
            services.assign_task(task, owner_id=form.owner_id.data,
                                 due_at=local_to_utc(form.due_at.data), actor=current_user)
        except RuleViolation as err:
            refuse(err)
    else:
        flash(" ".join(e for errors in form.errors.values() for e in errors), "error")
    return _back(event, "checklist")


@bp.route("/<int:event_id>/timeline", methods=["POST"])
@access(*EDITORS)
def add_timeline_entry(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = TimelineForm()
    if form.validate_on_submit():
        try:
            services.add_timeline_entry(event, occurred_at=local_to_utc(form.occurred_at.data),
                                        text=form.text.data, actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Added to the timeline."), "success")
            return _back(event, "timeline")
    return _invalid(event, timeline_form=form)


@bp.route("/<int:event_id>/stakeholders", methods=["POST"])
@access(*EDITORS)
def add_stakeholder(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = StakeholderForm()
    if form.validate_on_submit():
        try:
            services.add_stakeholder(event, kind=form.kind.data, name=form.name.data,
                                     contact=form.contact.data or "", actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Stakeholder added."), "success")
            return _back(event, "stakeholders")
    return _invalid(event, stakeholder_form=form)


@bp.route("/stakeholders/<int:stakeholder_id>/informed", methods=["POST"])
@access(STAFF)
def stakeholder_informed(stakeholder_id: int) -> ResponseReturnValue:
    stakeholder = db.get_or_404(Stakeholder, stakeholder_id)
    if ConfirmForm().validate_on_submit():
        try:
            services.mark_informed(stakeholder, actor=current_user)
        except RuleViolation as err:
            refuse(err)
    return _back(db.session.get(Event, stakeholder.event_id), "stakeholders")


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
            flash(_("Template task added."), "success")
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
        services.delete_template_item(item, actor=current_user)
        flash(_("Template task removed."), "success")
    return redirect(url_for("events.settings"))


@bp.route("/settings/items/<int:item_id>/delete", methods=["POST"])
@access(Role.ADMIN)
def delete_template_item(item_id: int) -> ResponseReturnValue:
    item = db.get_or_404(ChecklistTemplateItem, item_id)
    if ConfirmForm().validate_on_submit():
        services.delete_template_item(item, actor=current_user)
        flash(_("Template task removed."), "success")
    return redirect(url_for("events.settings"))


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
        flash(_("Targets saved."), "success")
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
                                  actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
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
        refuse(err)
    else:
        flash(_("Status changed."), "success")
    return redirect(url_for("events.detail", event_id=event.id))
