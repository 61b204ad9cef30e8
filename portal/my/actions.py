"""What a customer does on their page besides writing to us: answer an offer, say how to be
paid, add evidence to a case, open a claim. The rules live in the domains' services
(``cases.offers``, ``customers.payout``, ``cases.evidence``, ``cases.claims``); here each is
a case panel or a page section (``portal.my.panels``, registered in ``portal.wiring``) and a
route that calls the service for the customer of the session.

A refused answer comes back on the page with the message by its field (422): the view puts
it in ``g.my_errors[<panel>]``, which the panel's context reads when the page is drawn again.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from portal.cases import claims, customer_side, evidence, evidence_views, offers
from portal.cases.forms import ClaimForm
from portal.cases.models import Case
from portal.cases.refusals import DuplicateCase
from portal.customers import payout
from portal.customers.models import Customer
from portal.customers.session import current_customer, customer_required
from portal.errors import RuleViolation
from portal.i18n import locale_code
from portal.my.views import bp, render_page
from portal.security import PUBLIC, access
from portal.web import roll_back


def _errors(panel: str, key: object = None) -> dict[str, Any]:
    return g.get("my_errors", {}).get((panel, key), {})


def _refused(panel: str, key: object, **state: Any) -> ResponseReturnValue:
    g.setdefault("my_errors", {})[(panel, key)] = state
    return render_page(current_customer(), status=422)


def _own_case(case_id: int) -> Case:
    case = customer_side.case_of(current_customer(), case_id)
    if case is None:  # none, or another customer's: the same answer
        abort(404)
    return case


def _back_to(case: Case | None = None, anchor: str | None = None) -> ResponseReturnValue:
    return redirect(url_for("my.page", _anchor=anchor or f"case-{case.ref}"), 303)


# --- panels and sections (their contexts) --------------------------------------------------

def offer_context(case: Case, _customer: Customer) -> dict[str, Any] | None:
    shown = offers.for_customer(case, locale_code())
    if shown["offer"] is None and shown["decision"] is None:
        return None
    return {**shown, "errors": _errors("offer", case.id)}


def evidence_context(case: Case, _customer: Customer) -> dict[str, Any]:
    return {"files": evidence.for_case(case), "room": evidence.room_left(case),
            "error": _errors("evidence", case.id).get("message")}


def payout_context(customer: Customer) -> dict[str, Any]:
    state = _errors("payout")
    return {"payout": payout.view_for(customer), "errors": state.get("errors", {}),
            "values": state.get("values", {})}


def claim_context(customer: Customer) -> dict[str, Any] | None:
    if not customer.event.accepts_claims:
        return None
    state = _errors("claim")
    return {"form": state.get("form") or ClaimForm(formdata=None),
            "duplicate_url": state.get("duplicate_url"), "file_error": state.get("file_error")}


# --- routes --------------------------------------------------------------------------------

@bp.route("/cases/<int:case_id>/offer", methods=["POST"])
@access(PUBLIC)
@customer_required
def offer(case_id: int) -> ResponseReturnValue:
    case = _own_case(case_id)
    try:
        offers.respond(case, current_customer(), request.form, request.remote_addr)
    except RuleViolation as err:
        roll_back(err)
        return _refused("offer", case.id, **{err.field or "form": err.message})
    flash(_("Your answer to the offer on case %(ref)s was recorded.", ref=case.ref), "success")
    return _back_to(case)


@bp.route("/payout", methods=["POST"])
@access(PUBLIC)
@customer_required
def payout_details() -> ResponseReturnValue:
    try:
        payout.confirm(current_customer(), request.form, request.remote_addr)
        chosen = payout.view_for(current_customer())
    except RuleViolation as err:
        roll_back(err)
        values = {k: v for k, v in request.form.items() if k != "account"}  # never echoed
        return _refused("payout", None, errors={err.field or "form": err.message},
                        values=values)
    flash(_("Your payout details were saved: %(method)s.", method=chosen.method_label),
          "success")
    return _back_to(anchor="section-payout")


@bp.route("/cases/<int:case_id>/evidence", methods=["POST"])
@access(PUBLIC)
@customer_required
@evidence_views.upload_limit
def upload_evidence(case_id: int) -> ResponseReturnValue:
    case = _own_case(case_id)
    message = evidence_views.receive_from_customer(case, current_customer())
    if message is None:
        return _back_to(case)
    return _refused("evidence", case.id, message=message)


def _claim_with_file(form: ClaimForm) -> claims.ClaimOutcome:
    """The claim, and the receipt sent with it on the case it became (all or nothing)."""
    outcome = claims.open_from_customer(current_customer(), form.claim_input())
    sent = request.files.get(evidence.FIELD)
    if sent is None or not sent.filename:
        return outcome
    if outcome.case is None:
        raise RuleViolation(_("A receipt can be kept once the claim is a case: give the amount, "
                              "or send the claim without the file and add it later."),
                            field=evidence.FIELD)
    evidence.add_from_customer(outcome.case, current_customer(), sent)
    return outcome


@bp.route("/claim", methods=["POST"])
@access(PUBLIC)
@customer_required
@evidence_views.upload_limit
def claim() -> ResponseReturnValue:
    form = ClaimForm()
    if form.validate_on_submit():
        try:
            outcome = _claim_with_file(form)
        except RuleViolation as err:
            roll_back(err)
            if err.field and hasattr(form, err.field):
                getattr(form, err.field).errors = [err.message]
            duplicate = (url_for("my.page", _anchor=f"case-{err.existing_ref}")
                         if isinstance(err, DuplicateCase) else None)
            return _refused("claim", None, form=form, duplicate_url=duplicate,
                            file_error=err.message if err.field == evidence.FIELD else None)
        if outcome.case is not None:
            flash(_("Your claim is case %(ref)s; we will answer by e-mail and here.",
                    ref=outcome.case.ref), "success")
            return _back_to(outcome.case)
        flash(_("Your claim for order %(order)s was received; an agent will look at it and "
                "write to you.", order=outcome.claim.order_ref), "success")
        return _back_to(anchor="section-claim")
    return _refused("claim", None, form=form)
