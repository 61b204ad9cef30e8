"""Staff pages of programmes: the event's list, the form, the programme page with its preview
(an htmx partial: it can take seconds) and the request for legal's sign-off."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.accounts import Role
from portal.audit import services as audit
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.programmes import preview as previews
from portal.programmes import services
from portal.programmes.forms import ProgrammeForm, SignoffRequestForm
from portal.programmes.models import (
    LOW_VALUE_LABELS,
    MODE_LABELS,
    PROGRAMME_STATUS_LABELS,
    Programme,
    ProgrammeStatus,
)
from portal.programmes.rules import EXCLUSION_LABELS
from portal.programmes.wording import rules_in_words
from portal.security import STAFF, access, can
from portal.web import refuse, wants_partial

bp = Blueprint("programmes", __name__, url_prefix="/programmes")
EDITORS = (Role.AGENT, Role.ADMIN)
bp.add_app_template_global(rules_in_words, "programme_rules_in_words")


@bp.app_context_processor
def programme_labels() -> dict[str, object]:
    return {"programme_status_labels": PROGRAMME_STATUS_LABELS,
            "programme_mode_labels": MODE_LABELS, "low_value_labels": LOW_VALUE_LABELS,
            "exclusion_labels": EXCLUSION_LABELS}


def _version(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


@bp.route("/event/<int:event_id>")
@access(STAFF)
def index(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    return render_template("programmes/index.html", event=event,
                           programmes=services.for_event(event))


@bp.route("/event/<int:event_id>/new", methods=["GET", "POST"])
@access(*EDITORS)
def new(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = ProgrammeForm()
    if form.validate_on_submit():
        try:
            programme = services.create_programme(event, form.values(), actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Programme %(name)s created as a draft. Check the preview before asking "
                    "for sign-off.", name=programme.name), "success")
            return redirect(url_for("programmes.detail", programme_id=programme.id))
    return render_template("programmes/form.html", event=event, form=form, programme=None), (
        422 if form.errors else 200)


@bp.route("/<int:programme_id>/edit", methods=["GET", "POST"])
@access(*EDITORS)
def edit(programme_id: int) -> ResponseReturnValue:
    programme = db.get_or_404(Programme, programme_id)
    posted = request.method == "POST"
    form = ProgrammeForm() if posted else ProgrammeForm.from_programme(programme)
    if posted and form.validate_on_submit():
        try:
            changed = services.update_programme(
                programme, form.values(), expected_version=_version(form.lock_version.data),
                actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Programme %(name)s saved.", name=programme.name) if changed else
                  _("Programme %(name)s: nothing changed.", name=programme.name),
                  "success" if changed else "info")
            return redirect(url_for("programmes.detail", programme_id=programme.id))
    programme = db.get_or_404(Programme, programme_id)
    return render_template("programmes/form.html", event=programme.event, form=form,
                           programme=programme), 422 if form.errors else 200


@bp.route("/<int:programme_id>")
@access(STAFF)
def detail(programme_id: int) -> ResponseReturnValue:
    programme = db.get_or_404(Programme, programme_id)
    return _detail(programme, SignoffRequestForm())


def _detail(programme: Programme, form: SignoffRequestForm,
            status: int = 200) -> ResponseReturnValue:
    return render_template(
        "programmes/detail.html", programme=programme, event=programme.event, form=form,
        signoff=services.signoff_request(programme),
        can_edit=can("programmes.edit") and programme.status in services.EDITABLE,
        can_request=can("programmes.request_signoff")
        and programme.status == ProgrammeStatus.DRAFT,
        history=audit.history(services.SUBJECT, programme.id)), status


@bp.route("/<int:programme_id>/preview")
@access(STAFF)
def preview(programme_id: int) -> ResponseReturnValue:
    """The preview partial (loaded by htmx after the page)."""
    programme = db.get_or_404(Programme, programme_id)
    if not wants_partial():
        return redirect(url_for("programmes.detail", programme_id=programme.id))
    try:
        outcome = previews.preview(programme)
    except RuleViolation as err:
        return render_template("programmes/_preview.html", programme=programme, outcome=None,
                               problem=err.message)
    shown = [row.customer_id for row in (*outcome.samples, *outcome.excluded)]
    customer_refs = {customer_id: ref for customer_id, ref in db.session.execute(
        select(Customer.id, Customer.external_ref).where(Customer.id.in_(shown)))}
    return render_template("programmes/_preview.html", programme=programme, outcome=outcome,
                           problem=None, customer_refs=customer_refs)


@bp.route("/<int:programme_id>/request-signoff", methods=["POST"])
@access(*EDITORS)
def request_signoff(programme_id: int) -> ResponseReturnValue:
    programme = db.get_or_404(Programme, programme_id)
    form = SignoffRequestForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.request_signoff(programme, actor=current_user,
                                 acknowledge_budget=bool(form.acknowledge_budget.data))
    except RuleViolation as err:
        refuse(err, form)
        programme = db.get_or_404(Programme, programme_id)
        return _detail(programme, form, 422)
    flash(_("Programme %(name)s sent to legal for sign-off.", name=programme.name), "success")
    return redirect(url_for("programmes.detail", programme_id=programme.id))
