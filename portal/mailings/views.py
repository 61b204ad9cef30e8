"""Staff pages to compose, test, send and follow mailings."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from portal import documents, exports, jobs
from portal.accounts import Role
from portal.audit import services as audit
from portal.cases.models import CLOSED_STATUSES, OPEN_STATUSES
from portal.cases.models import LABELS as CASE_LABELS
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.i18n import reader_locale
from portal.mailings import compose, repeats, services, tasks
from portal.mailings.audience import (
    NO_CASE,
    SEARCH_LIMIT,
    Audience,
    audience_members,
    event_tags,
    search_members,
    summarise,
)
from portal.mailings.forms import MailingForm
from portal.mailings.models import Mailing, MailingStatus, MailingTestSend
from portal.models import PdfStatus
from portal.placeholders import PlaceholderError
from portal.security import STAFF, access
from portal.web import database_int, refuse, roll_back, wants_partial

bp = Blueprint("mailings", __name__, url_prefix="/mailings")
bp.add_app_template_global(MailingStatus, "MailingStatus")
SENDERS = (Role.AGENT, Role.ADMIN)


def _form(event: Event, mailing: Mailing | None = None) -> MailingForm:
    form = MailingForm(obj=None if request.method == "POST" else mailing)
    if mailing is not None and request.method != "POST":
        audience = Audience.from_dict(mailing.audience)
        form.tags.data, form.locales.data = list(audience.tags), list(audience.locales)
        form.case_statuses.data = list(audience.case_statuses)
    if mailing is None and request.method != "POST":
        form.greeting_zh.data = compose.DEFAULT_GREETINGS["zh_CN"]
        form.greeting_en.data = compose.DEFAULT_GREETINGS["en"]
    form.version_id.choices = [
        (version.id, f"{notice.ref} v{version.number} · "
                     f"{version.in_locale(reader_locale())[1]['title']}")
        for notice, version in compose.sendable_versions(event)]
    form.tags.choices = [(t, t) for t in event_tags(event.id)]
    form.case_statuses.choices = [(NO_CASE, _("No case"))] + [
        (s, str(CASE_LABELS[s])) for s in (*OPEN_STATUSES, *CLOSED_STATUSES)]
    return form


def _queue_pdf(mailing: Mailing) -> None:
    for row in (compose.mailing_pdfs(mailing).values() if mailing.attach_pdf else ()):
        if row.status == PdfStatus.QUEUED:
            documents.queue_after_commit(row)


@bp.route("/event/<int:event_id>")
@access(STAFF)
def index(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    mailings = services.mailings_of(event.id)
    return render_template("mailings/index.html", event=event, mailings=mailings,
                           progress={m.id: services.progress(m) for m in mailings})


@bp.route("/event/<int:event_id>/new", methods=["GET", "POST"])
@access(*SENDERS)
def create(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = _form(event)
    if form.validate_on_submit():
        try:
            mailing = services.create_mailing(event, form.to_input(), actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            _queue_pdf(mailing)
            flash(_("Mailing %(id)d of %(notice)s drafted. Check the audience and a preview, "
                    "then send.", id=mailing.id, notice=mailing.notice.ref), "success")
            return redirect(url_for("mailings.detail", mailing_id=mailing.id))
    return render_template("mailings/form.html", form=form, event=event, mailing=None), (
        422 if form.errors or request.method == "POST" else 200)


@bp.route("/<int:mailing_id>/edit", methods=["GET", "POST"])
@access(*SENDERS, when=services.editable)
def edit(mailing_id: int) -> ResponseReturnValue:
    mailing = db.get_or_404(Mailing, mailing_id)
    if not mailing.editable:
        flash(_("Mailing %(id)d has been started; only a draft can be changed.",
                id=mailing.id), "error")
        return redirect(url_for("mailings.detail", mailing_id=mailing.id))
    form = _form(mailing.event, mailing)
    if form.validate_on_submit():
        try:
            services.update_mailing(mailing, form.to_input(), actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            _queue_pdf(mailing)
            flash(_("Mailing %(id)d saved.", id=mailing.id), "success")
            return redirect(url_for("mailings.detail", mailing_id=mailing.id))
    return render_template("mailings/form.html", form=form, event=mailing.event,
                           mailing=mailing), 422 if request.method == "POST" else 200


@bp.route("/event/<int:event_id>/audience")
@access(STAFF)
def audience(event_id: int) -> ResponseReturnValue:
    """The live count and sample while composing (the form's filters as query arguments)."""
    event = db.get_or_404(Event, event_id)
    chosen = Audience.from_dict({k: request.args.getlist(k) for k in
                                 ("tags", "locales", "case_statuses")})
    version_id = request.args.get("version_id", type=database_int)
    mandatory = compose.is_mandatory(version_id)
    return render_template("mailings/_audience.html", event=event, mandatory=mandatory,
                           summary=summarise(event.id, chosen, mandatory))


def _detail_page(mailing: Mailing, status: int = 200,
                 repeat_error: str | None = None) -> ResponseReturnValue:
    summary, repeat = None, None
    mandatory = (mailing.mandatory if not mailing.editable
                 else compose.is_mandatory(mailing.version_id))
    if mailing.editable:
        summary = summarise(mailing.event_id, Audience.from_dict(mailing.audience), mandatory)
        repeat = repeats.repeat_of(mailing, mandatory)
    tests = db.session.scalars(db.select(MailingTestSend).where(
        MailingTestSend.mailing_id == mailing.id).order_by(MailingTestSend.id.desc())
        .limit(5)).all()
    return render_template(
        "mailings/detail.html", mailing=mailing, summary=summary, repeat=repeat,
        repeat_error=repeat_error, repeat_field=repeats.CONFIRM_FIELD, search_limit=SEARCH_LIMIT,
        progress=services.progress(mailing), confirm=ConfirmForm(), tests=tests,
        pdfs=compose.mailing_pdfs(mailing) if mailing.attach_pdf else {},
        mandatory=mandatory, history=audit.history("mailing", mailing.id),
        audience_label=Audience.from_dict(mailing.audience).label), status


@bp.route("/<int:mailing_id>")
@access(STAFF)
def detail(mailing_id: int) -> ResponseReturnValue:
    return _detail_page(db.get_or_404(Mailing, mailing_id))


@bp.route("/<int:mailing_id>/progress")
@access(STAFF)
def progress(mailing_id: int) -> ResponseReturnValue:
    mailing = db.get_or_404(Mailing, mailing_id)
    return render_template("mailings/_progress.html", mailing=mailing,
                           progress=services.progress(mailing), confirm=ConfirmForm())


@bp.route("/<int:mailing_id>/preview")
@access(STAFF)
def preview(mailing_id: int) -> ResponseReturnValue:
    """The message exactly as one customer will get it (text and HTML)."""
    mailing = db.get_or_404(Mailing, mailing_id)
    customer = db.session.get(Customer, request.args.get("customer", 0, type=database_int))
    if customer is None or customer.event_id != mailing.event_id:
        customer = next(audience_members(
            mailing.event_id, Audience.from_dict(mailing.audience)), None)
    rendered, greeting_error = None, None
    if customer is not None:
        person = compose.personal_values([customer], Audience.from_dict(mailing.audience))[
            customer.id]
        try:  # customer_id=None: the preview's unsubscribe link is inert
            rendered = compose.render_for(compose.MessageParts.for_mailing(mailing),
                                          customer.locale, person, None)
        except PlaceholderError as err:
            greeting_error = err.message
    template = "mailings/_preview.html" if wants_partial("preview") else "mailings/preview.html"
    return render_template(template, mailing=mailing, customer=customer, rendered=rendered,
                           greeting_error=greeting_error)


@bp.route("/<int:mailing_id>/preview/customers")
@access(STAFF)
def preview_customers(mailing_id: int) -> ResponseReturnValue:
    """Customers of the audience to preview the message as, found by name, e-mail or ref."""
    mailing = db.get_or_404(Mailing, mailing_id)
    query = (request.args.get("q") or "")[:100]
    matches, more = search_members(mailing.event_id, Audience.from_dict(mailing.audience), query)
    template = ("mailings/_preview_matches.html" if wants_partial("preview-matches")
                else "mailings/preview_customers.html")
    return render_template(template, mailing=mailing, matches=matches, more=more, query=query,
                           search_limit=SEARCH_LIMIT)


def _action_done(mailing: Mailing, chunks: list[int] | None, message: str) -> Response:
    if chunks:
        jobs.enqueue_after_commit(
            tasks.queue_chunks, mailing.id, chunks, queued=message,
            unreachable=_("The mail queue cannot be reached. The mailing is saved and stays "
                          "queued; it will send by itself when the queue is back."))
    else:
        flash(message, "success")
    return redirect(url_for("mailings.detail", mailing_id=mailing.id))


@bp.route("/<int:mailing_id>/start", methods=["POST"])
@access(*SENDERS)
def start(mailing_id: int) -> ResponseReturnValue:
    mailing = db.get_or_404(Mailing, mailing_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("mailings.detail", mailing_id=mailing.id))
    try:
        chunks = services.start(
            mailing, actor=current_user,
            repeat_confirmed=request.form.get(repeats.CONFIRM_FIELD) == "y")
    except RuleViolation as err:
        if err.field == repeats.CONFIRM_FIELD:  # answered by the box to tick, not a redirect
            roll_back(err)
            return _detail_page(db.get_or_404(Mailing, mailing_id), 422, err.message)
        refuse(err)
        return redirect(url_for("mailings.detail", mailing_id=mailing.id))
    return _action_done(mailing, chunks, ngettext(
        "Mailing %(id)d of %(notice)s started: %(num)d customer will be e-mailed.",
        "Mailing %(id)d of %(notice)s started: %(num)d customers will be e-mailed.",
        services.progress(mailing).remaining, id=mailing.id, notice=mailing.notice.ref))


@bp.route("/<int:mailing_id>/<any(pause, resume, cancel):action>", methods=["POST"])
@access(*SENDERS)
def change(mailing_id: int, action: str) -> ResponseReturnValue:
    mailing = db.get_or_404(Mailing, mailing_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("mailings.detail", mailing_id=mailing.id))
    try:
        if action == "pause":
            services.pause(mailing, actor=current_user)
            chunks = None
            message = _("Mailing %(id)d paused. Messages being sent right now still go out.",
                        id=mailing.id)
        elif action == "resume":
            chunks = services.resume(mailing, actor=current_user)
            message = _("Mailing %(id)d resumed.", id=mailing.id)
        else:
            dropped = services.cancel(mailing, actor=current_user)
            chunks = None
            message = ngettext(
                "Mailing %(id)d cancelled: %(num)d waiting recipient will not be mailed.",
                "Mailing %(id)d cancelled: %(num)d waiting recipients will not be mailed.",
                dropped, id=mailing.id)
    except RuleViolation as err:
        refuse(err)
        return redirect(url_for("mailings.detail", mailing_id=mailing.id))
    return _action_done(mailing, chunks, message)


@bp.route("/<int:mailing_id>/test", methods=["POST"])
@access(*SENDERS, when=services.testable)
def test_send(mailing_id: int) -> ResponseReturnValue:
    mailing = db.get_or_404(Mailing, mailing_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("mailings.detail", mailing_id=mailing.id))
    customer = db.session.get(Customer, request.form.get("customer", 0, type=database_int))
    try:
        row = services.request_test(mailing, customer, actor=current_user)
    except RuleViolation as err:
        refuse(err)
    else:
        jobs.enqueue_after_commit(
            tasks.queue_test, row.id,
            queued=_("A test message is on its way to %(email)s.", email=row.to_address),
            unreachable=_("The mail queue cannot be reached. The test message is saved and "
                          "will be sent when the queue is back."))
    return redirect(url_for("mailings.detail", mailing_id=mailing.id))


@bp.route("/<int:mailing_id>/report.csv")
@access(STAFF)
def report(mailing_id: int) -> ResponseReturnValue:
    mailing = db.get_or_404(Mailing, mailing_id)
    return exports.response(f"mailing-{mailing.id}-report.csv", services.report_csv(mailing))
