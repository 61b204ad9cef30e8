"""The triage queue (``/triage``): claims that wait for an agent's decision, and the
decision. Only agents and admins see the claimants' details or decide."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal import jobs
from portal.accounts import Role
from portal.cases import claim_tasks, triage
from portal.cases.claim_models import CLAIM_LABELS, Claim, ClaimStatus
from portal.cases.forms import TriageForm
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.security import access
from portal.web import database_int, refuse

bp = Blueprint("triage", __name__, url_prefix="/triage")
DECIDERS = (Role.AGENT, Role.ADMIN)
RECENT = 20


@bp.app_context_processor
def claim_labels() -> dict[str, object]:
    return {"claim_labels": CLAIM_LABELS}


@bp.route("/")
@access(*DECIDERS)
def index() -> ResponseReturnValue:
    waiting = list(db.session.scalars(triage.waiting()))
    decided = list(db.session.scalars(
        select(Claim).where(Claim.status.in_([ClaimStatus.ACCEPTED, ClaimStatus.REJECTED]))
        .order_by(Claim.decided_at.desc(), Claim.id.desc()).limit(RECENT)))
    return render_template("cases/triage_index.html", claims_waiting=waiting, decided=decided)


def _detail(claim: Claim, form: TriageForm | None = None, status: int = 200,
            ) -> ResponseReturnValue:
    q = (request.args.get("q") or "").strip()[:100]
    found = triage.candidates(claim, q) if claim.waiting and not claim.customer_id else []
    return render_template("cases/triage_detail.html", claim=claim, form=form or TriageForm(),
                           candidates=found, q=q or claim.email), status


@bp.route("/<int:claim_id>")
@access(*DECIDERS)
def detail(claim_id: int) -> ResponseReturnValue:
    return _detail(db.get_or_404(Claim, claim_id))


def _decided(claim: Claim, form: TriageForm, decide: object) -> ResponseReturnValue:
    """Run one decision; on a refusal show the claim again with the message by its field."""
    try:
        case = decide()  # type: ignore[operator]
    except RuleViolation as err:
        refuse(err, form)
        return _detail(claim, form, 422)
    if case is None:
        flash(_("Claim #%(id)d rejected; the reason is e-mailed to the claimant.", id=claim.id),
              "success")
        return redirect(url_for("triage.index"))
    flash(_("Claim #%(id)d became case %(ref)s.", id=claim.id, ref=case.ref), "success")
    return redirect(url_for("cases.detail", case_id=case.id))


@bp.route("/<int:claim_id>/match", methods=["POST"])
@access(*DECIDERS, when=triage.may_decide)
def match(claim_id: int) -> ResponseReturnValue:
    claim = db.get_or_404(Claim, claim_id)
    form = TriageForm()
    if not form.validate_on_submit():
        return _detail(claim, form, 422)
    customer_id = claim.customer_id or request.form.get("customer_id", type=database_int)
    customer = db.session.get(Customer, customer_id) if customer_id else None

    def decide() -> object:
        if customer is None:
            raise RuleViolation(_("Choose the customer this claim belongs to."),
                                field="customer_id")
        return triage.match(claim, customer, form.amount.data, actor=current_user)

    return _decided(claim, form, decide)


@bp.route("/<int:claim_id>/create", methods=["POST"])
@access(*DECIDERS, when=triage.may_decide)
def create(claim_id: int) -> ResponseReturnValue:
    claim = db.get_or_404(Claim, claim_id)
    form = TriageForm()
    if not form.validate_on_submit():
        return _detail(claim, form, 422)
    return _decided(claim, form, lambda: triage.create_customer(claim, form.amount.data,
                                                                actor=current_user))


@bp.route("/<int:claim_id>/reject", methods=["POST"])
@access(*DECIDERS, when=triage.may_decide)
def reject(claim_id: int) -> ResponseReturnValue:
    claim = db.get_or_404(Claim, claim_id)
    form = TriageForm()
    if not form.validate_on_submit():
        return _detail(claim, form, 422)

    def decide() -> None:
        triage.reject(claim, form.reason.data, actor=current_user)
        if claim.mail_status is not None:
            jobs.enqueue_after_commit(claim_tasks.queue_mail, claim.id, unreachable=_(
                "The e-mail to the claimant waits: the job queue cannot be reached; it goes "
                "out when it is back."))

    return _decided(claim, form, decide)
