"""Legal's decision form."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.signoffs.models import SignoffStatus
from portal.signoffs.stamp import STAMP_CHOICES


class DecisionForm(FlaskForm):
    decision = RadioField(_l("Decision"), choices=[
        (SignoffStatus.APPROVED, _l("Approve")),
        (SignoffStatus.CHANGES_REQUESTED, _l("Request changes")),
        (SignoffStatus.REJECTED, _l("Reject"))],
        validators=[DataRequired()])
    comment = TextAreaField(_l("Comment (required to reject or request changes)"),
                            validators=[Length(max=5000)])
    mandatory = BooleanField(_l("Mandatory notice: e-mail it also to customers who "
                                "unsubscribed (legal or safety information)"))


class StampForm(FlaskForm):
    stamp = RadioField(_l("Legal's stamp on PDFs names"), choices=list(STAMP_CHOICES.items()),
                       validators=[DataRequired(message=_l("Choose one of the options."))])
