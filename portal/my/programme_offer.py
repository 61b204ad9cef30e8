"""A remediation programme's offer on the customer's page: the "programme" case panel and the
route that accepts it (``portal.programmes.optin``). Registered in ``portal.wiring``."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from portal.cases.models import Case
from portal.customers.models import Customer
from portal.customers.session import current_customer, customer_required
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import locale_code
from portal.my.views import bp, render_page
from portal.programmes import optin
from portal.programmes.models import MemberStatus, ProgrammeMember
from portal.security import PUBLIC, access
from portal.web import roll_back

PANEL = "programme"


def programme_context(case: Case, customer: Customer) -> dict[str, Any] | None:
    offer = optin.offer_for(case, customer, locale_code())
    if offer is None:
        return None
    errors = g.get("my_errors", {}).get((PANEL, case.id), {})
    return {"offer": offer, "MemberStatus": MemberStatus, "errors": errors}


def _refused(case_id: int | None, errors: dict[str, str]) -> ResponseReturnValue:
    """The page again, with the message by its field (as ``portal.my.actions`` does)."""
    g.setdefault("my_errors", {})[(PANEL, case_id)] = errors
    return render_page(current_customer(), status=422)


@bp.route("/programme/<int:member_id>/accept", methods=["POST"])
@access(PUBLIC)
@customer_required
def accept_programme(member_id: int) -> ResponseReturnValue:
    customer = current_customer()
    member = db.session.get(ProgrammeMember, member_id)
    case = db.session.get(Case, member.case_id) if member and member.case_id else None
    try:
        new = optin.accept(member_id, customer, hash_seen=request.form.get("offer_hash", ""),
                           locale=request.form.get("locale") or customer.locale,
                           confirmed=request.form.get("confirm") == "yes")
    except RuleViolation as err:
        roll_back(err)
        own = case is not None and case.customer_id == customer.id
        return _refused(case.id if own else None, {err.field or "form": err.message})
    if new == MemberStatus.LATE:
        flash(_("%(programme)s: your acceptance was recorded after the deadline; we will "
                "review it and write to you.", programme=member.programme.name), "warning")
    else:
        flash(_("%(programme)s: you accepted the offer; we will pay you as described.",
                programme=member.programme.name), "success")
    anchor = f"case-{case.ref}" if case is not None else None
    return redirect(url_for("my.page", _anchor=anchor), 303)
