"""Staff pages of the postmortems domain: the six-step editor beside the event's facts,
legal sign-off, and the PDF."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from portal import documents
from portal.accounts import Role
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.postmortems import pdf, services
from portal.postmortems.forms import PostmortemForm
from portal.postmortems.models import (
    BLAMELESS_REMINDER,
    STEP_TERMS,
    STEP_TITLES,
    STEPS,
    Postmortem,
)
from portal.security import STAFF, access, can
from portal.web import refuse, wants_partial

bp = Blueprint("postmortems", __name__, url_prefix="/postmortems")
EDITORS = (Role.AGENT, Role.ADMIN)


@bp.app_context_processor
def postmortem_labels() -> dict[str, object]:
    """Step titles for any page that shows a post-mortem (the sign-off page too)."""
    return {"postmortem_steps": [(key, STEP_TITLES[key], STEP_TERMS[key]) for key in STEPS]}


def _page(event: Event, postmortem: Postmortem | None, form: PostmortemForm | None = None,
          status: int = 200) -> tuple[str, int]:
    can_edit = can("postmortems.save")
    if postmortem is not None and form is None and can_edit:
        form = PostmortemForm(data={**postmortem.texts(),
                                    "lock_version": str(postmortem.lock_version)})
    steps = services.steps(postmortem)
    if form is not None:
        for step in steps:
            form[step.key].label.text = Markup('{} <span lang="zh-CN">{}</span>{}').format(
                step.number, step.term, "" if step.title == step.term else f" · {step.title}")
    found = services.facts(event)
    return render_template(
        "postmortems/detail.html", event=event, postmortem=postmortem, form=form,
        steps=steps, facts=found, can_edit=can_edit, confirm=ConfirmForm(),
        blameless=BLAMELESS_REMINDER,
        signoff=services.signoff_state(postmortem, found) if postmortem else None,
        pdf=services.latest_pdf(postmortem) if postmortem else None,
        history=audit.history(services.SUBJECT, postmortem.id) if postmortem else [],
    ), status


@bp.route("/event/<int:event_id>")
@access(STAFF)
def detail(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    return _page(event, services.for_event(event))


@bp.route("/<int:postmortem_id>")
@access(STAFF)
def by_id(postmortem_id: int) -> ResponseReturnValue:
    postmortem = db.get_or_404(Postmortem, postmortem_id)
    return redirect(url_for("postmortems.detail", event_id=postmortem.event_id))


@bp.route("/event/<int:event_id>/facts")
@access(STAFF)
def facts(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    if not wants_partial():
        return redirect(url_for("postmortems.detail", event_id=event.id))
    return render_template("postmortems/_facts.html", event=event,
                           facts=services.facts(event))


@bp.route("/event/<int:event_id>/start", methods=["POST"])
@access(*EDITORS)
def start(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    services.start(event, actor=current_user)
    return redirect(url_for("postmortems.detail", event_id=event.id))


def _version(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


@bp.route("/event/<int:event_id>/save", methods=["POST"])
@access(*EDITORS)
def save(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    postmortem = services.for_event(event)
    if postmortem is None:
        abort(404)
    form = PostmortemForm()
    if form.validate_on_submit():
        try:
            changed = services.update(postmortem, form.texts(),
                                      expected_version=_version(form.lock_version.data),
                                      actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Post-mortem of %(event)s saved.", event=event.title) if changed
                  else _("Post-mortem of %(event)s: nothing changed.", event=event.title),
                  "success")
            return redirect(url_for("postmortems.detail", event_id=event.id))
    return _page(event, db.session.get(Postmortem, postmortem.id), form, 422)


@bp.route("/event/<int:event_id>/request-signoff", methods=["POST"])
@access(*EDITORS)
def request_signoff(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    postmortem = services.for_event(event)
    if postmortem is None or not ConfirmForm().validate_on_submit():
        abort(404 if postmortem is None else 400)
    try:
        services.request_signoff(postmortem, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        flash(_("Post-mortem of %(event)s sent to legal for sign-off.", event=event.title),
              "success")
    return redirect(url_for("postmortems.detail", event_id=event.id))


@bp.route("/event/<int:event_id>/pdf", methods=["POST"])
@access(STAFF)
def request_pdf(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    postmortem = services.for_event(event)
    if postmortem is None or not ConfirmForm().validate_on_submit():
        abort(404 if postmortem is None else 400)
    return documents.requested(services.request_pdf(postmortem, actor=current_user))


@bp.route("/pdfs/<int:pdf_id>")
@access(STAFF)
def pdf_status(pdf_id: int) -> ResponseReturnValue:
    return documents.status_page(pdf.PIPELINE, pdf_id, "postmortems/pdf_status.html")


@bp.route("/pdfs/<int:pdf_id>/file")
@access(STAFF)
def pdf_file(pdf_id: int) -> ResponseReturnValue:
    return documents.download(pdf.PIPELINE, pdf_id)
