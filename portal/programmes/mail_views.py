"""Staff pages of a running programme's mail: its mailings (the launch and the re-contact of
unclaimed members, drafted here and sent on the mailing's own page), and the review of late
acceptances."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from portal.accounts import Role
from portal.errors import RuleViolation
from portal.extensions import db
from portal.forms import ConfirmForm
from portal.i18n import reader_locale
from portal.mailings import compose
from portal.mailings import services as mailings
from portal.programmes import mailing as programme_mailing
from portal.programmes import optin
from portal.programmes.mail_forms import ProgrammeMailingForm
from portal.programmes.models import MemberStatus, Programme, ProgrammeMember
from portal.security import STAFF, access
from portal.web import refuse

bp = Blueprint("programme_mail", __name__, url_prefix="/programmes")
SENDERS = (Role.AGENT, Role.ADMIN)


def _page(template: str, programme: Programme, **context: object) -> str:
    return render_template(template, programme=programme,
                           programme_name=programme.name_in(reader_locale()), **context)


def _counts(programme: Programme) -> dict[str, int]:
    """Members by status, unclaimed ones by reason, and how many were notified."""
    counts: dict[str, int] = {}
    for status, reason, count in db.session.execute(
            select(ProgrammeMember.status, ProgrammeMember.unclaimed_reason,
                   func.count(ProgrammeMember.id))
            .where(ProgrammeMember.programme_id == programme.id)
            .group_by(ProgrammeMember.status, ProgrammeMember.unclaimed_reason)):
        counts[status] = counts.get(status, 0) + count
        if reason:
            counts[f"unclaimed:{reason}"] = count
    counts["notified"] = db.session.scalar(select(func.count(ProgrammeMember.id)).where(
        ProgrammeMember.programme_id == programme.id,
        ProgrammeMember.notified_at.is_not(None))) or 0
    return counts


@bp.route("/<int:programme_id>/mail")
@access(STAFF)
def overview(programme_id: int) -> ResponseReturnValue:
    programme = db.get_or_404(Programme, programme_id)
    shown = programme_mailing.programme_mailings(programme)
    return _page("programmes/mail/overview.html", programme, counts=_counts(programme),
                 mailings=shown, progress={m.id: mailings.progress(m) for m in shown},
                 late=len(optin.late_members(programme)), MemberStatus=MemberStatus)


@bp.route("/<int:programme_id>/mail/new/<members>", methods=["GET", "POST"])
@access(*SENDERS)
def new_mailing(programme_id: int, members: str) -> ResponseReturnValue:
    """Draft the launch mailing, or the re-contact mailing of unclaimed members."""
    programme = db.get_or_404(Programme, programme_id)
    if members not in (programme_mailing.LAUNCH, programme_mailing.RECONTACT):
        return redirect(url_for("programme_mail.overview", programme_id=programme.id))
    form = ProgrammeMailingForm()
    if request.method != "POST":
        form.greeting_zh.data = programme_mailing.DEFAULT_GREETINGS["zh_CN"]
        form.greeting_en.data = programme_mailing.DEFAULT_GREETINGS["en"]
    form.version_id.choices = [
        (version.id, f"{notice.ref} v{version.number} · "
                     f"{version.in_locale(reader_locale())[1]['title']}")
        for notice, version in compose.sendable_versions(programme.event)]
    if form.validate_on_submit():
        try:
            mailing = programme_mailing.draft_mailing(programme, members, form.to_input(),
                                                      actor=current_user)
        except RuleViolation as err:
            refuse(err, form)
        else:
            flash(_("Mailing %(id)d drafted for the programme. Check the audience and a "
                    "preview, then send.", id=mailing.id), "success")
            return redirect(url_for("mailings.detail", mailing_id=mailing.id))
    return _page("programmes/mail/new.html", programme, form=form, members=members), (
        422 if request.method == "POST" else 200)


@bp.route("/<int:programme_id>/late")
@access(STAFF)
def late(programme_id: int) -> ResponseReturnValue:
    programme = db.get_or_404(Programme, programme_id)
    return _page("programmes/mail/late.html", programme,
                 members=optin.late_members(programme), confirm=ConfirmForm())


@bp.route("/<int:programme_id>/late/<int:member_id>", methods=["POST"])
@access(*SENDERS)
def review(programme_id: int, member_id: int) -> ResponseReturnValue:
    programme = db.get_or_404(Programme, programme_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            new = optin.review_late(programme, member_id, request.form.get("decision", ""),
                                    actor=current_user)
        except RuleViolation as err:
            refuse(err)
        else:
            flash(_("Programme %(name)s: the late acceptance is accepted; the member will be "
                    "paid.", name=programme.name)
                  if new == MemberStatus.ACCEPTED else
                  _("Programme %(name)s: the late acceptance is refused; the member is "
                    "unclaimed.", name=programme.name), "success")
    return redirect(url_for("programme_mail.late", programme_id=programme.id), 303)
