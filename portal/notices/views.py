"""Staff pages for notices: draft, preview, versions and diff, sign-off, publish, PDFs."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from portal import documents, uow
from portal.accounts import Role
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.i18n import local_to_utc, locale_code, utc_to_local
from portal.markdown import check_renderable, render_markdown
from portal.notices import comparison, content, pdf, publishing, services, signals
from portal.notices import settings as notice_settings
from portal.notices.content import STARTERS
from portal.notices.forms import (
    ContactForm,
    DiffForm,
    NoticeForm,
    ReasonForm,
    StarterForm,
    WithdrawForm,
)
from portal.notices.models import (
    CONTENT_LOCALES,
    PDF_LABELS,
    PUBLISH_REFUSALS,
    STATUS_LABELS,
    Notice,
    NoticePdf,
    NoticeStatus,
    NoticeVersion,
)
from portal.security import STAFF, access
from portal.signoffs import services as signoffs
from portal.web import refuse, show_error

bp = Blueprint("notices", __name__, url_prefix="/staff/notices")
DRAFTERS = (Role.AGENT, Role.ADMIN)


bp.add_app_template_global(NoticeStatus, "NoticeStatus")


@bp.app_context_processor
def notice_labels() -> dict[str, object]:
    return {"notice_labels": STATUS_LABELS, "pdf_labels": PDF_LABELS}


@bp.app_template_filter("markdown")
def markdown_filter(text: str) -> Markup:
    return Markup(render_markdown(text))  # sanitised by an allow-list


def _placeholders(event: Event) -> dict[str, dict[str, str]]:
    """What a starter is filled in with, per language: the event's title in that language,
    the hotline and the contact e-mail of the settings."""
    contact = notice_settings.contact_details()
    return {locale: {"event_title": event.title_in(locale), **contact}
            for locale in CONTENT_LOCALES}


@bp.route("/new/<int:event_id>", methods=["GET", "POST"])
@access(*DRAFTERS)
def create(event_id: int) -> ResponseReturnValue:
    event = db.get_or_404(Event, event_id)
    form = NoticeForm()
    starter = StarterForm(request.args)
    if request.method == "GET" and starter.starter.data in STARTERS:
        filled = content.starter(starter.starter.data, _placeholders(event))
        for locale, entry in filled.items():
            getattr(form, f"title_{locale}").data = entry["title"]
            getattr(form, f"body_{locale}").data = entry["body"]
    failed = False
    if form.validate_on_submit():
        try:
            notice = services.create_notice(
                event, audience=form.audience.data, content=form.content(), actor=current_user,
                planned_publish_at=local_to_utc(form.planned_publish_at.data),
                publish_on_approval=bool(form.publish_on_approval.data))
        except RuleViolation as err:
            refuse(err, form)
            failed = True
        else:
            flash(_("Notice %(ref)s drafted as version 1.", ref=notice.ref), "success")
            return redirect(url_for("notices.detail", notice_id=notice.id))
    return render_template("notices/new.html", form=form, event=event, starter=starter), (
        422 if form.errors or failed else 200)


@bp.route("/<int:notice_id>")
@access(STAFF)
def detail(notice_id: int) -> ResponseReturnValue:
    notice = db.get_or_404(Notice, notice_id)
    latest = notice.latest_version
    request_ = signoffs.latest(services.SUBJECT, latest.id) if latest else None
    pdfs: dict[tuple[NoticeVersion, str], dict[str, NoticePdf]] = {}
    for row in db.session.scalars(select(NoticePdf).join(NoticeVersion).where(
            NoticeVersion.notice_id == notice.id).order_by(NoticeVersion.number.desc(),
                                                           NoticePdf.kind.desc())):
        pdfs.setdefault((row.version, row.kind), {})[row.locale] = row
    return render_template(
        "notices/detail.html", notice=notice, latest=latest, signoff=request_,
        confirm=ConfirmForm(), emergency_form=ReasonForm(), withdraw_form=WithdrawForm(),
        pdfs=pdfs, history=audit.history("notice", notice.id),
        unfilled=content.unfilled_placeholders(latest.content()) if latest else {},
        publish_refusals=PUBLISH_REFUSALS,
    )


@bp.route("/<int:notice_id>/edit", methods=["GET", "POST"])
@access(*DRAFTERS, when=services.editable)
def edit(notice_id: int) -> ResponseReturnValue:
    notice = db.get_or_404(Notice, notice_id)
    form = NoticeForm(obj=None)
    if request.method == "GET":
        _fill_from(form, notice)
    failed = False
    if form.validate_on_submit():
        try:
            based_on = int(form.based_on.data or 0)
            version = services.save(
                notice, content=form.content(), audience=form.audience.data,
                planned_publish_at=local_to_utc(form.planned_publish_at.data),
                based_on=based_on, actor=current_user,
                publish_on_approval=bool(form.publish_on_approval.data))
        except (RuleViolation, ValueError) as err:
            uow.rollback()
            show_error(form, err if isinstance(err, RuleViolation)
                        else RuleViolation(_("The form is incomplete; reload the page.")))
            failed = True
        else:
            if version:
                flash(_("Notice %(ref)s saved as version %(n)d.", ref=notice.ref,
                        n=version.number), "success")
            else:
                flash(_("Notice %(ref)s: nothing changed.", ref=notice.ref), "info")
            return redirect(url_for("notices.detail", notice_id=notice.id))
    return render_template("notices/edit.html", form=form, notice=notice), (
        422 if form.errors or failed else 200)


def _fill_from(form: NoticeForm, notice: Notice) -> None:
    """The editing form as the notice's latest version and plan stand."""
    latest = notice.latest_version
    form.audience.data = notice.audience
    form.planned_publish_at.data = utc_to_local(notice.planned_publish_at)
    form.publish_on_approval.data = notice.publish_on_approval
    form.based_on.data = str(latest.number)
    for locale, entry in latest.content().items():
        getattr(form, f"title_{locale}").data = entry["title"]
        getattr(form, f"body_{locale}").data = entry["body"]


@bp.route("/preview", methods=["POST"])
@access(*DRAFTERS)
def preview() -> ResponseReturnValue:
    """The live preview of one language's fields, rendered and sanitised as customers see it."""
    locale = request.args.get("locale", "")
    if locale not in CONTENT_LOCALES:
        abort(400)
    body = request.form.get(f"body_{locale}", "")
    try:  # what saving would refuse, said while the author types
        check_renderable(body, field=f"body_{locale}")
        problem = None
    except RuleViolation as err:
        problem = err.message
    return render_template("notices/_preview.html", locale=locale, problem=problem,
                           title=request.form.get(f"title_{locale}", ""),
                           body_html=render_markdown(body))


@bp.route("/<int:notice_id>/diff")
@access(STAFF)
def diff(notice_id: int) -> ResponseReturnValue:
    notice = db.get_or_404(Notice, notice_id)
    form = DiffForm(request.args)
    a, b = comparison.pair(notice, form.a.data, form.b.data)
    return render_template("notices/diff.html", notice=notice, a=a, b=b,
                           numbers=[v.number for v in notice.versions],
                           sections=comparison.compare(notice, a, b))


@bp.route("/settings", methods=["GET", "POST"])
@access(Role.ADMIN)
def settings() -> ResponseReturnValue:
    """The hotline and the contact e-mail notice templates fill in."""
    form = ContactForm()
    if request.method == "GET":
        form.contact_phone.data = notice_settings.contact_details()["contact_phone"]
        form.contact_email.data = notice_settings.contact_details()["contact_email"]
    failed = False
    if form.validate_on_submit():
        try:
            changed = notice_settings.save_contact(phone=form.contact_phone.data or "",
                                                   email=form.contact_email.data or "",
                                                   actor=current_user)
        except notice_settings.InvalidContact as err:
            uow.rollback()
            for name, message in err.errors.items():
                getattr(form, name).errors = [message]
            failed = True
        else:
            flash(_("Notice contact details saved: hotline and contact e-mail.") if changed
                  else _("The notice contact details already were these; nothing changed."),
                  "success" if changed else "info")
            return redirect(url_for("notices.settings"))
    return render_template("notices/settings.html", form=form), (
        422 if form.errors or failed else 200)


def _act(notice_id: int, action, success) -> ResponseReturnValue:
    """Run ``action`` on the notice; ``success(notice, result)`` says what it did."""
    notice = db.get_or_404(Notice, notice_id)
    try:
        result = action(notice)
    except RuleViolation as err:
        refuse(err)
    else:
        flash(success(notice, result), "success")
    return redirect(url_for("notices.detail", notice_id=notice_id))


@bp.route("/<int:notice_id>/request-signoff", methods=["POST"])
@access(*DRAFTERS, when=services.may_request_signoff)
def request_signoff(notice_id: int) -> ResponseReturnValue:
    """Ask legal; a text with unfilled placeholders comes back as the editing form, each
    field's missing placeholders beside it (422, nothing asked)."""
    notice = db.get_or_404(Notice, notice_id)
    if ConfirmForm().validate_on_submit():
        try:
            services.request_signoff(notice, actor=current_user)
        except services.UnfilledPlaceholders as err:
            uow.rollback()
            form = NoticeForm(formdata=None)
            _fill_from(form, notice)
            for name, placeholders in err.missing.items():
                getattr(form, name).errors = [_("Fill in: %(names)s", names=", ".join(
                    placeholders))]
            flash(err.message, "error")
            return render_template("notices/edit.html", form=form, notice=notice), 422
        except RuleViolation as err:
            refuse(err)
        else:
            flash(_("Notice %(ref)s version %(n)d sent to legal for sign-off.", ref=notice.ref,
                    n=notice.latest_version.number), "success")
    return redirect(url_for("notices.detail", notice_id=notice_id))


@bp.route("/<int:notice_id>/publish", methods=["POST"])
@access(*DRAFTERS, when=services.may_publish)
def publish(notice_id: int) -> ResponseReturnValue:
    def action(notice: Notice) -> object:
        publication = publishing.publish(notice, actor=current_user)
        if publication is not None:
            publishing.after_publication([notice.id])
        return publication

    return _act(notice_id, action,
                lambda n, p: _("Notice %(ref)s published.", ref=n.ref) if p
                else _("Notice %(ref)s scheduled; it is published at the planned time.",
                       ref=n.ref))


@bp.route("/<int:notice_id>/emergency-publish", methods=["POST"])
@access(Role.ADMIN, when=services.may_emergency_publish)
def emergency_publish(notice_id: int) -> ResponseReturnValue:
    form = ReasonForm()

    def action(notice: Notice) -> object:
        publication = publishing.emergency_publish(notice, reason=form.reason.data or "",
                                                   actor=current_user)
        publishing.after_publication([notice.id])
        return publication

    return _act(notice_id, action,
                lambda n, _p: _("Notice %(ref)s published before legal review; legal has been "
                                "asked to review it.", ref=n.ref))


@bp.route("/<int:notice_id>/withdraw", methods=["POST"])
@access(*DRAFTERS, when=services.may_withdraw)
def withdraw(notice_id: int) -> ResponseReturnValue:
    form = WithdrawForm()

    def action(notice: Notice) -> None:
        publishing.withdraw(notice, reason=form.reason.data or "", hide=bool(form.hide.data),
                            actor=current_user)
        uow.after_commit(signals.public_content_changed.send)

    return _act(notice_id, action, lambda n, _r: _("Notice %(ref)s withdrawn.", ref=n.ref))


@bp.route("/versions/<int:version_id>/pdf", methods=["POST"])
@access(STAFF)
def request_pdf(version_id: int) -> ResponseReturnValue:
    """Both languages' PDFs of the version; the reader's own is the status page shown."""
    version = db.get_or_404(NoticeVersion, version_id)
    rows = services.request_pdfs(version, services.pdf_kind(version))
    return documents.requested(rows.pop(locale_code()), *rows.values())


@bp.route("/pdfs/<int:pdf_id>")
@access(STAFF)
def pdf_status(pdf_id: int) -> ResponseReturnValue:
    return documents.status_page(pdf.PIPELINE, pdf_id, "notices/pdf_status.html")


@bp.route("/pdfs/<int:pdf_id>/file")
@access(STAFF)
def pdf_file(pdf_id: int) -> ResponseReturnValue:
    return documents.download(pdf.PIPELINE, pdf_id)
