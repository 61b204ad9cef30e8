"""Staff pages of the lifecycle domain: an event's export and retention, the retention
setting and its runs, and the erasure of one customer."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, flash, redirect, render_template, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select

from portal import jobs, uow
from portal.accounts import Role
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.lifecycle import erasure, tasks
from portal.lifecycle import export as archive_export
from portal.lifecycle import retention as retention_rules
from portal.lifecycle.forms import EraseForm, RetentionForm
from portal.lifecycle.models import (
    STATUS_LABELS,
    ArchiveStatus,
    EventArchive,
    RetentionRun,
    RetentionRunStatus,
)
from portal.security import STAFF, access
from portal.web import refuse, wants_partial

bp = Blueprint("lifecycle", __name__, url_prefix="/lifecycle")
bp.add_app_template_global(ArchiveStatus, "ArchiveStatus")
bp.add_app_template_global(RetentionRunStatus, "RetentionRunStatus")


def _queue_after_commit(queue: Callable[[int], bool], row_id: int) -> None:
    jobs.enqueue_after_commit(
        queue, row_id, unreachable=_("The job queue cannot be reached. The work is saved and "
                                     "will start when the queue is back."))


@bp.route("/event/<int:event_id>")
@access(STAFF)
def event(event_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Event, event_id)
    archives = db.session.scalars(select(EventArchive).where(EventArchive.event_id == item.id)
                                  .order_by(EventArchive.id.desc()).limit(20)).all()
    return render_template("lifecycle/event.html", event=item, archives=archives,
                           retention=retention_rules.event_retention(item), confirm=ConfirmForm(),
                           labels=STATUS_LABELS)


@bp.route("/event/<int:event_id>/export", methods=["POST"])
@access(Role.ADMIN)
def export(event_id: int) -> ResponseReturnValue:
    item = db.get_or_404(Event, event_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        row = archive_export.request_export(item, actor=current_user)
    except RuleViolation as err:
        refuse(err)
        return redirect(url_for("lifecycle.event", event_id=item.id))
    _queue_after_commit(tasks.queue_archive, row.id)
    return redirect(url_for("lifecycle.archive", archive_id=row.id))


@bp.route("/archives/<int:archive_id>")
@access(STAFF)
def archive(archive_id: int) -> ResponseReturnValue:
    row = db.get_or_404(EventArchive, archive_id)
    if wants_partial():
        return render_template("lifecycle/_archive.html", archive=row, labels=STATUS_LABELS)
    return render_template("lifecycle/archive.html", archive=row, labels=STATUS_LABELS)


@bp.route("/archives/<int:archive_id>/download")
@access(Role.ADMIN)
def download(archive_id: int) -> ResponseReturnValue:
    row = db.get_or_404(EventArchive, archive_id)
    path = archive_export.archive_path(row)
    if row.status != ArchiveStatus.DONE or path is None or not path.exists():
        abort(404)
    archive_export.record_download(row, actor=current_user)
    uow.commit()  # a GET, but who downloaded the personal data is audited before it leaves
    return send_file(path, mimetype="application/zip", as_attachment=True,
                     download_name=path.name)


@bp.route("/retention", methods=["GET", "POST"])
@access(Role.ADMIN)
def retention() -> ResponseReturnValue:
    current = retention_rules.policy()
    form = RetentionForm(obj=current)
    if form.validate_on_submit():
        try:
            if retention_rules.set_retention_days(form.days.data, actor=current_user):
                flash(ngettext("Retention changed to %(num)d day.",
                               "Retention changed to %(num)d days.", form.days.data), "success")
            return redirect(url_for("lifecycle.retention"))
        except RuleViolation as err:
            refuse(err, form)
    runs = db.session.scalars(select(RetentionRun).order_by(RetentionRun.id.desc())
                              .limit(20)).all()
    return render_template("lifecycle/retention.html", form=form, policy=current, runs=runs,
                           confirm=ConfirmForm(), labels=STATUS_LABELS)


@bp.route("/retention/dry-run", methods=["POST"])
@access(Role.ADMIN)
def dry_run() -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    run = retention_rules.dry_run(actor=current_user)
    return redirect(url_for("lifecycle.run", run_id=run.id))


@bp.route("/retention/runs/<int:run_id>")
@access(Role.ADMIN)
def run(run_id: int) -> ResponseReturnValue:
    row = db.get_or_404(RetentionRun, run_id)
    if wants_partial():
        return render_template("lifecycle/_run_status.html", run=row, labels=STATUS_LABELS)
    return render_template("lifecycle/run.html", run=row, confirm=ConfirmForm(),
                           labels=STATUS_LABELS)


@bp.route("/retention/runs/<int:run_id>/confirm", methods=["POST"])
@access(Role.ADMIN, when=retention_rules.awaiting_confirmation)
def confirm_run(run_id: int) -> ResponseReturnValue:
    row = db.get_or_404(RetentionRun, run_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        retention_rules.confirm_run(row, actor=current_user)
    except RuleViolation as err:
        refuse(err)
        return redirect(url_for("lifecycle.run", run_id=row.id))
    _queue_after_commit(tasks.queue_retention, row.id)
    return redirect(url_for("lifecycle.run", run_id=row.id))


@bp.route("/retention/runs/<int:run_id>/cancel", methods=["POST"])
@access(Role.ADMIN, when=retention_rules.awaiting_confirmation)
def cancel_run(run_id: int) -> ResponseReturnValue:
    row = db.get_or_404(RetentionRun, run_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        retention_rules.cancel_run(row, actor=current_user)
        flash(_("Retention run %(id)d cancelled; nothing was erased.", id=row.id), "success")
    except RuleViolation as err:
        refuse(err)
    return redirect(url_for("lifecycle.run", run_id=row.id))


@bp.route("/customers/<int:customer_id>/erase", methods=["GET", "POST"])
@access(Role.ADMIN)
def erase_customer(customer_id: int) -> ResponseReturnValue:
    customer = db.get_or_404(Customer, customer_id)
    form = EraseForm()
    if form.validate_on_submit():
        try:
            erasure.erase_on_request(customer, form.reason.data, actor=current_user)
            flash(_("Personal data of customer #%(id)d erased.", id=customer.id), "success")
            return redirect(url_for("customers.detail", customer_id=customer.id))
        except RuleViolation as err:
            refuse(err, form)
    return render_template("lifecycle/erase.html", customer=customer, form=form), (
        422 if form.errors else 200)
