"""The command centre (``/events/<id>``): an event's status, timeline, checklist, targets,
stakeholders, cases and sign-offs on one page, and the actions whose answer is a part of it."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal import uow
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.centre import services as read_model
from portal.comms import services as comms
from portal.comms.forms import LeadForm
from portal.comms.models import REMINDER_KIND_LABELS, REMINDER_STATUS_LABELS
from portal.errors import RuleViolation
from portal.events import services
from portal.events.forms import AssignForm, StakeholderForm, StatusForm, TaskForm, TimelineForm
from portal.events.models import (
    DEPARTMENT_LABELS,
    LABELS,
    STAKEHOLDER_KINDS,
    TARGET_METRICS,
    Event,
    EventTask,
    Stakeholder,
)
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.i18n import local_to_utc, utc_to_local
from portal.programmes import progress as programme_progress
from portal.programmes.models import PROGRAMME_STATUS_LABELS
from portal.security import STAFF, access
from portal.web import refuse, wants_partial

# The same addresses as the rest of the event pages (/events/…).
bp = Blueprint("centre", __name__, url_prefix="/events")
# Who writes the command centre; legal reads it and ticks its own tasks.
EDITORS = (Role.AGENT, Role.ADMIN)


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
    lead_form = forms.get("lead_form") or LeadForm(lead_id=event.comms_lead_id)
    return {
        "event": event, "status_form": status_form, "task_form": task_form,
        "timeline_form": forms.get("timeline_form") or TimelineForm(),
        "stakeholder_form": forms.get("stakeholder_form") or StakeholderForm(),
        "confirm": ConfirmForm(), "centre": read_model.command_centre(event),
        "history": audit.history("event", event.id),
        "department_labels": DEPARTMENT_LABELS, "metric_labels": TARGET_METRICS,
        "stakeholder_labels": STAKEHOLDER_KINDS, "local_input": _local_input,
        "programme_runs": programme_progress.event_programmes(
            event.id, "en" if str(get_locale()).startswith("en") else "zh_CN"),
        "programme_status_labels": PROGRAMME_STATUS_LABELS,
        "lead_form": lead_form.offer(comms.lead_choices()), "cadence_clock": comms.clock(event),
        "cadence_reminders": comms.recent_reminders(event),
        "reminder_labels": {**REMINDER_KIND_LABELS, **REMINDER_STATUS_LABELS},
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
    return redirect(url_for("centre.detail", event_id=event.id, _anchor=anchor))


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
            flash(_("Task “%(title)s” added to the checklist of %(event)s.",
                    title=form.title.data.strip(), event=event.title), "success")
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
            flash(_("Entry added to the timeline of %(event)s.", event=event.title), "success")
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
            flash(_("Stakeholder “%(name)s” added to %(event)s.", name=form.name.data.strip(),
                    event=event.title), "success")
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


@bp.route("/<int:event_id>/communications-lead", methods=["POST"])
@access(*EDITORS)
def set_comms_lead(event_id: int) -> ResponseReturnValue:
    """Name the event's communications lead (reminded when the next public update is due)."""
    event = db.get_or_404(Event, event_id)
    form = LeadForm()
    if form.validate_on_submit():
        try:
            changed = comms.set_lead(event, form.lead_id.data, actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            lead = event.comms_lead
            if changed:
                flash(_("Communications lead of %(event)s: %(name)s.", event=event.title,
                        name=lead.name) if lead else
                      _("%(event)s has no communications lead now.", event=event.title),
                      "success")
            return _back(event, "communications")
    if wants_partial("communications"):
        return render_template("events/_communications.html",
                               **_centre(event, lead_form=form)), 422
    return _invalid(event, lead_form=form)
