"""Admin pages for an event's offer terms: whether customers must accept offers, the terms
per language, and their sign-off by legal."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal.accounts import Role
from portal.audit import services as audit
from portal.cases import offers
from portal.cases.forms import OfferTermsForm
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.security import access
from portal.web import refuse

bp = Blueprint("offers", __name__, url_prefix="/offers")


def _page(event: Event, form: OfferTermsForm, status: int = 200) -> ResponseReturnValue:
    terms = offers.terms_for(event.id)
    return render_template(
        "cases/offer_terms.html", event=event, form=form, terms=terms,
        signoff=offers.terms_signoff(event.id), approved=offers.approved_terms(event.id),
        request_form=ConfirmForm(), history=audit.history("event", event.id)), status


@bp.route("/event/<int:event_id>", methods=["GET", "POST"])
@access(Role.ADMIN)
def terms(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = OfferTermsForm(obj=offers.terms_for(event.id))
    if form.validate_on_submit():
        try:
            changed = offers.save_terms(event, required=form.required.data,
                                        text_zh=form.text_zh.data or "",
                                        text_en=form.text_en.data or "", actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
            return _page(db.get_or_404(Event, event_id), form, 422)
        flash(_("Offer terms of “%(event)s” saved.", event=event.title) if changed
              else _("Offer terms of “%(event)s”: nothing changed.", event=event.title),
              "success")
        return redirect(url_for("offers.terms", event_id=event.id))
    return _page(event, form, 422 if form.errors else 200)


@bp.route("/event/<int:event_id>/request-signoff", methods=["POST"])
@access(Role.ADMIN, when=offers.may_request_signoff)
def request_signoff(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    if ConfirmForm().validate_on_submit():
        try:
            offers.request_terms_signoff(event, actor=current_user)
        except RuleViolation as err:
            refuse(err)
        else:
            flash(_("Offer terms of “%(event)s” sent to legal for sign-off.", event=event.title),
                  "success")
    return redirect(url_for("offers.terms", event_id=event.id))
