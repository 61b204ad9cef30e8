"""Finance's pages: payout batches (list, prepare with a preview, release by a second person,
cancel) and the batch's bank files (requested, followed while a job makes them, downloaded)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal import documents
from portal.accounts import Role
from portal.cases.models import Case
from portal.customers import payout
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import locale_code
from portal.payouts import files, profiles, results, services
from portal.payouts.forms import BatchActionForm, FileForm, PrepareForm
from portal.payouts.models import (
    BATCH_STATUS_LABELS,
    BatchStatus,
    PayoutBatch,
    PayoutFile,
    PayoutLine,
)
from portal.programmes.models import Programme
from portal.security import access
from portal.web import database_int, refuse, roll_back, wants_partial

bp = Blueprint("payouts", __name__, url_prefix="/payouts")

# Who sees payouts: finance, and admins (who may also release and cancel).
READERS = (Role.FINANCE, Role.ADMIN)
PAGE_SIZE = 50
LINES_PER_PAGE = 100


@bp.route("/")
@access(*READERS)
def index() -> ResponseReturnValue:
    page = db.paginate(select(PayoutBatch).order_by(PayoutBatch.id.desc()),
                       page=request.args.get("page", 1, type=database_int), per_page=PAGE_SIZE,
                       error_out=False)
    template = "payouts/_batches.html" if wants_partial("payout-batches") else "payouts/index.html"
    return render_template(template, page=page, args={})


@bp.route("/new", methods=["GET", "POST"])
@access(Role.FINANCE)
def prepare() -> ResponseReturnValue:
    """GET with a choice shows how many cases and how much; POST creates the batch."""
    if request.method == "POST":
        form = PrepareForm()
        if form.validate_on_submit():
            try:
                batch = services.prepare_batch(
                    programme_id=form.chosen_programme(), currency=form.currency.data or "",
                    method=form.method.data or "", actor=current_user)
            except RuleViolation as err:
                refuse(err, form)
            else:
                flash(_("Batch %(ref)s prepared: %(count)d cases, %(total)s %(currency)s. "
                        "Another finance user or an admin releases it.", ref=batch.ref,
                        count=batch.line_count, total=str(batch.control_sum),
                        currency=batch.currency), "success")
                return redirect(url_for("payouts.batch", payout_batch_id=batch.id))
        return _prepare_page(form, None, 422)
    form = PrepareForm(request.args, meta={"csrf": False})
    selection = None
    if "currency" in request.args and form.validate():
        try:
            selection = services.select_cases(programme_id=form.chosen_programme(),
                                              currency=form.currency.data or "",
                                              method=form.method.data or "")
        except RuleViolation as err:
            refuse(err, form)
    return _prepare_page(form, selection, 422 if form.errors else 200)


def _prepare_page(form: PrepareForm, selection: services.Selection | None,
                  status: int) -> ResponseReturnValue:
    return render_template("payouts/prepare.html", form=form, selection=selection), status


def _batch_or_404(batch_id: int) -> PayoutBatch:
    return db.get_or_404(PayoutBatch, batch_id)


@bp.route("/<int:payout_batch_id>")
@access(*READERS)
def batch(payout_batch_id: int) -> ResponseReturnValue:
    return _batch_page(_batch_or_404(payout_batch_id))


def _batch_page(batch: PayoutBatch, status: int = 200,
                file_form: FileForm | None = None) -> ResponseReturnValue:
    lines = db.paginate(select(PayoutLine).where(PayoutLine.batch_id == batch.id)
                        .order_by(PayoutLine.id),
                        page=request.args.get("page", 1, type=database_int),
                        per_page=LINES_PER_PAGE, error_out=False)
    file_rows = db.session.scalars(select(PayoutFile).where(PayoutFile.batch_id == batch.id)
                                   .order_by(PayoutFile.id.desc())).all()
    cases = {case.id: case for case in db.session.scalars(
        select(Case).where(Case.id.in_([line.case_id for line in lines.items])))}
    cancelled = batch.status == BatchStatus.CANCELLED
    if wants_partial("payout-lines"):
        return render_template("payouts/_lines.html", batch=batch, lines=lines, cases=cases,
                               accounts=_masked(lines.items, cases), cancelled=cancelled,
                               totals=services.line_totals(batch)), status
    return render_template(
        "payouts/batch.html", batch=batch, lines=lines, cases=cases,
        programme=db.session.get(Programme, batch.programme_id) if batch.programme_id else None,
        accounts=_masked(lines.items, cases),
        totals=services.line_totals(batch), files=file_rows, labels=BATCH_STATUS_LABELS,
        action_form=BatchActionForm(), file_form=file_form or _file_form(batch),
        failure=files.failure, locale=locale_code(), cancelled=cancelled,
        own_batch_awaiting_release=services.awaits_another_checker(current_user, batch),
        takes_results=batch.status in results.ACCEPTING,
        args={}), status


def _masked(lines: list[PayoutLine], cases: dict[int, Case]) -> dict[int, str]:
    """Each line's account masked to its last four characters (the full one is in the file)."""
    shown = {}
    for line in lines:
        if line.payout_sealed:
            customer_id = cases[line.case_id].customer_id
            shown[line.id] = payout.unseal(customer_id, line.payout_sealed).masked_account
    return shown


def _file_form(batch: PayoutBatch, data: object = None) -> FileForm:
    form = FileForm(data) if data is not None else FileForm()
    form.format.choices = [(f, files.FORMAT_LABELS[f]) for f in files.formats_for(batch)]
    form.profile.choices = [(p.name, p.label) for p in profiles.profiles().values()]
    return form


def _act(batch_id: int, action: str) -> ResponseReturnValue:
    batch = _batch_or_404(batch_id)
    form = BatchActionForm()
    if not form.validate_on_submit():
        abort(400)
    expected = database_int(form.lock_version.data) if (form.lock_version.data or "").isdigit() \
        else None
    try:
        if action == "release":
            services.release_batch(batch, actor=current_user, expected_version=expected)
            flash(_("Batch %(ref)s released; its files can be made now.", ref=batch.ref),
                  "success")
        else:
            count = services.cancel_batch(batch, actor=current_user, expected_version=expected)
            flash(_("Batch %(ref)s cancelled; its %(count)d cases can be batched again.",
                    ref=batch.ref, count=count), "success")
    except RuleViolation as err:
        roll_back(err)
        flash(err.message, "error")
        return _batch_page(_batch_or_404(batch_id), getattr(err, "status", 409))
    return redirect(url_for("payouts.batch", payout_batch_id=batch_id))


@bp.route("/<int:payout_batch_id>/release", methods=["POST"])
@access(*READERS, when=services.may_release)
def release(payout_batch_id: int) -> ResponseReturnValue:
    return _act(payout_batch_id, "release")


@bp.route("/<int:payout_batch_id>/cancel", methods=["POST"])
@access(*READERS, when=services.may_cancel)
def cancel(payout_batch_id: int) -> ResponseReturnValue:
    return _act(payout_batch_id, "cancel")


@bp.route("/<int:payout_batch_id>/files", methods=["POST"])
@access(*READERS, when=files.may_have_files)
def request_file(payout_batch_id: int) -> ResponseReturnValue:
    batch = _batch_or_404(payout_batch_id)
    form = _file_form(batch, request.form)
    if not form.validate_on_submit():
        return _batch_page(batch, 422, form)
    try:
        row, _created = files.request_file(batch, format=form.format.data or "",
                                           profile=form.profile.data or "", actor=current_user)
    except RuleViolation as err:
        refuse(err, form)
        return _batch_page(_batch_or_404(payout_batch_id), 422, form)
    if not row.finished:
        documents.queue_after_commit(row, unreachable=_(
            "The job queue cannot be reached. The file is saved as requested and will be "
            "made when the queue is back."))
    return redirect(url_for("payouts.batch", payout_batch_id=batch.id, _anchor="files"))


@bp.route("/files/<int:payout_file_id>")
@access(*READERS)
def file_status(payout_file_id: int) -> ResponseReturnValue:
    """The file's row: the self-polling partial for htmx, else its batch's page."""
    row = db.get_or_404(PayoutFile, payout_file_id)
    if wants_partial():
        return render_template("payouts/_file_status.html", row=row, failure=files.failure)
    return redirect(url_for("payouts.batch", payout_batch_id=row.batch_id, _anchor="files"))


@bp.route("/files/<int:payout_file_id>/download")
@access(*READERS)
def download_file(payout_file_id: int) -> ResponseReturnValue:
    return documents.download(files.PIPELINE, payout_file_id)
