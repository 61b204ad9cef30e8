"""Staff pages of an event's entitlements: the list with totals per currency, and the CSV
import (upload, check by a job, confirm or discard, apply by a job)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal import exports, jobs
from portal.accounts import Role
from portal.audit import services as audit
from portal.customers.models import IMPORT_LABELS, ImportStatus
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.programmes import entitlement_tasks as tasks
from portal.programmes import entitlements as services
from portal.programmes.entitlement_rows import COLUMNS, PAYOUT_COLUMNS, amount_text
from portal.programmes.forms import EntitlementImportForm
from portal.programmes.models import EntitlementImport
from portal.security import STAFF, access
from portal.web import database_int, refuse, wants_partial

bp = Blueprint("entitlements", __name__, url_prefix="/entitlements")
EDITORS = (Role.AGENT, Role.ADMIN)
PAGE_SIZE = 50
RECENT_IMPORTS = 5


def _index_page(event: Event, form: EntitlementImportForm) -> str:
    page = db.paginate(services.listing(event.id),
                       page=request.args.get("page", 1, type=database_int), per_page=PAGE_SIZE,
                       error_out=False)
    if wants_partial("entitlement-results"):
        return render_template("programmes/_entitlement_results.html", event=event, page=page,
                               amount_text=amount_text)
    imports = db.session.scalars(
        select(EntitlementImport).where(EntitlementImport.event_id == event.id)
        .order_by(EntitlementImport.id.desc()).limit(RECENT_IMPORTS)).all()
    return render_template("programmes/entitlements.html", event=event, page=page, form=form,
                           totals=services.totals(event.id), imports=imports,
                           import_labels=IMPORT_LABELS, columns=COLUMNS,
                           payout_columns=PAYOUT_COLUMNS, amount_text=amount_text)


@bp.route("/event/<int:event_id>")
@access(STAFF)
def index(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    return _index_page(event, EntitlementImportForm())


@bp.route("/event/<int:event_id>/import", methods=["POST"])
@access(*EDITORS)
def upload(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = EntitlementImportForm()
    if form.validate_on_submit():
        try:
            batch = services.start_import(event, form.file.data.stream,
                                          form.file.data.filename or "upload.csv",
                                          actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            jobs.enqueue_after_commit(
                tasks.queue_validation, batch.id,
                unreachable=_("The job queue cannot be reached. The file is saved and will be "
                              "checked when the queue is back."))
            return redirect(url_for("entitlements.import_status", import_id=batch.id))
    return _index_page(event, form), 422


@bp.route("/imports/<int:import_id>")
@access(STAFF)
def import_status(import_id: int) -> ResponseReturnValue:
    batch = db.get_or_404(EntitlementImport, import_id)
    context = {"batch": batch, "confirm": ConfirmForm(), "ImportStatus": ImportStatus}
    if wants_partial("import-progress"):
        return render_template("programmes/_import_progress.html", **context)
    return render_template("programmes/entitlement_import.html",
                           history=audit.history(services.SUBJECT, batch.id), **context)


@bp.route("/imports/<int:import_id>/confirm", methods=["POST"])
@access(*EDITORS)
def confirm_import(import_id: int) -> ResponseReturnValue:
    batch = db.get_or_404(EntitlementImport, import_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        services.confirm_import(batch, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        jobs.enqueue_after_commit(
            tasks.queue_import, batch.id,
            unreachable=_("The job queue cannot be reached. The import is saved and will run "
                          "when the queue is back."))
    return redirect(url_for("entitlements.import_status", import_id=batch.id))


@bp.route("/imports/<int:import_id>/discard", methods=["POST"])
@access(*EDITORS)
def discard_import(import_id: int) -> ResponseReturnValue:
    batch = db.get_or_404(EntitlementImport, import_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        services.discard_import(batch, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        flash(_("Import of %(file)s discarded: nothing was imported.", file=batch.filename),
              "success")
    return redirect(url_for("entitlements.import_status", import_id=batch.id))


@bp.route("/imports/<int:import_id>/rejected.csv")
@access(STAFF)
def rejected_rows(import_id: int) -> ResponseReturnValue:
    batch = db.get_or_404(EntitlementImport, import_id)
    if not services.rejected_path(batch).exists():
        abort(404)
    return exports.response(f"rejected-entitlements-{batch.id}.csv", services.rejected_csv(batch))
