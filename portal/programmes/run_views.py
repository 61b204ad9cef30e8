"""Staff pages of a running programme: creating its cases (a job, with a self-polling
progress bar), its progress per currency (each bar links to the members behind it), the
members and the unclaimed report (with a CSV download)."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal import exports, jobs
from portal.accounts import Role
from portal.audit import services as audit
from portal.cases.models import Case
from portal.errors import RuleViolation
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.programmes import generation, progress, tasks, unclaimed
from portal.programmes.models import PROGRAMME_STATUS_LABELS, Programme, ProgrammeMember
from portal.security import STAFF, access
from portal.web import database_int, refuse, wants_partial

bp = Blueprint("programme_runs", __name__, url_prefix="/programmes")
PAGE_SIZE = 50


def _programme(programme_id: int) -> Programme:
    return db.get_or_404(Programme, programme_id)


def _context(programme: Programme) -> dict[str, object]:
    return {"programme": programme, "name": programme.name,
            "status_label": PROGRAMME_STATUS_LABELS.get(programme.status, programme.status),
            "percent": generation.progress_percent(programme),
            "error": generation.error_message(programme),
            "figures": progress.programme_progress(programme), "confirm": ConfirmForm()}


@bp.route("/<int:programme_id>/run")
@access(STAFF)
def run(programme_id: int) -> ResponseReturnValue:
    programme = _programme(programme_id)
    context = _context(programme)
    if wants_partial("programme-progress"):
        return render_template("programmes/_progress.html", **context)
    return render_template("programmes/run.html",
                           history=audit.history("programme", programme.id), **context)


@bp.route("/<int:programme_id>/run/start", methods=["POST"])
@access(Role.ADMIN)
def start(programme_id: int) -> ResponseReturnValue:
    programme = _programme(programme_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        generation.start_generation(programme, current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        jobs.enqueue_after_commit(
            tasks.queue_generation, programme.id,
            unreachable=_("The job queue cannot be reached. The cases will be created when "
                          "the queue is back."),
            queued=_("Programme %(name)s: creating the cases has started.",
                     name=programme.name))
    return redirect(url_for("programme_runs.run", programme_id=programme.id))


@bp.route("/<int:programme_id>/members")
@access(STAFF)
def members(programme_id: int) -> ResponseReturnValue:
    programme = _programme(programme_id)
    stage = request.args.get("status") or None
    if stage is not None and stage not in progress.STAGE_LABELS:
        abort(404)
    page = db.paginate(progress.members_query(programme, stage)
                       .options(joinedload(ProgrammeMember.customer)),
                       page=request.args.get("page", 1, type=database_int), per_page=PAGE_SIZE,
                       error_out=False)
    case_ids = [m.case_id for m in page.items if m.case_id]
    case_refs = {case_id: ref for case_id, ref in db.session.execute(
        select(Case.id, Case.ref).where(Case.id.in_(case_ids)))} if case_ids else {}
    context = {"programme": programme, "name": programme.name, "page": page,
               "stage": stage, "stage_labels": progress.STAGE_LABELS, "case_refs": case_refs,
               "member_labels": progress.MEMBER_STATUS_LABELS,
               "args": {"status": stage} if stage else {}}
    if wants_partial("member-results"):
        return render_template("programmes/_members.html", **context)
    return render_template("programmes/members.html", **context)


@bp.route("/<int:programme_id>/unclaimed")
@access(STAFF)
def unclaimed_report(programme_id: int) -> ResponseReturnValue:
    programme = _programme(programme_id)
    return render_template("programmes/unclaimed.html", programme=programme,
                           name=programme.name, report=unclaimed.unclaimed_report(programme),
                           reason_labels=unclaimed.UNCLAIMED_REASONS)


@bp.route("/<int:programme_id>/unclaimed.csv")
@access(STAFF)
def unclaimed_csv(programme_id: int) -> ResponseReturnValue:
    programme = _programme(programme_id)
    return exports.response(f"programme-{programme.id}-unclaimed.csv",
                            unclaimed.unclaimed_csv(programme))
