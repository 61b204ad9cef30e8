"""Case forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from portal.cases.claims import Claimant, ClaimInput
from portal.cases.models import KINDS, LABELS, REASONS


class CaseForm(FlaskForm):
    kind = SelectField(_l("Kind"), choices=[(k, LABELS[k]) for k in KINDS])
    order_ref = StringField(_l("Order reference"), validators=[DataRequired(), Length(max=64)])
    amount = StringField(_l("Amount"), validators=[DataRequired(), Length(max=20)])
    currency = StringField(_l("Currency (ISO 4217)"), default="CNY",
                           validators=[DataRequired(), Length(min=3, max=3)])
    reason = SelectField(_l("Reason"), choices=[(r, LABELS[r]) for r in REASONS])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=10000)])
    assignee_id = SelectField(_l("Assignee"), coerce=str, validators=[Optional()],
                              render_kw={"data-user-content": ""})  # people's names
    lock_version = HiddenField()


class StepForm(FlaskForm):
    action = HiddenField(validators=[DataRequired()])
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=5000)])
    lock_version = HiddenField()


class PaymentForm(FlaskForm):
    amount = StringField(_l("Amount paid"), validators=[DataRequired(), Length(max=20)])
    payout_ref = StringField(_l("Payout reference"), validators=[DataRequired(), Length(max=64)])


class NoteForm(FlaskForm):
    kind = SelectField(_l("Kind"), choices=[("internal", _l("Internal note")),
                                            ("reply", _l("Reply to the customer (e-mailed)"))])
    body = TextAreaField(_l("Text"), validators=[DataRequired(), Length(max=20000)])


class CannedReplyForm(FlaskForm):
    title = StringField(_l("Title (what agents pick)"),
                        validators=[DataRequired(), Length(max=120)])
    body_zh = TextAreaField(_l("Reply in Chinese"), validators=[DataRequired(), Length(max=5000)])
    body_en = TextAreaField(_l("Reply in English"), validators=[DataRequired(), Length(max=5000)])


class OfferTermsForm(FlaskForm):
    required = BooleanField(_l("Customers must accept the offer before a case is paid"))
    text_zh = TextAreaField(_l("Offer terms (Chinese)"), validators=[Optional(),
                                                                   Length(max=20000)])
    text_en = TextAreaField(_l("Offer terms (English)"), validators=[Optional(),
                                                                   Length(max=20000)])


class ClaimForm(FlaskForm):
    """A claim from a notice; the service checks every field (messages by the field)."""

    kind = SelectField(_l("What you ask for"), choices=[(k, LABELS[k]) for k in KINDS])
    order_ref = StringField(_l("Order reference"))
    amount = StringField(_l("Amount claimed (optional)"))
    description = TextAreaField(_l("What happened"))

    def claim_input(self) -> ClaimInput:
        return ClaimInput(kind=self.kind.data, order_ref=self.order_ref.data or "",
                          amount=self.amount.data or None,
                          description=self.description.data or "")


class PublicClaimForm(ClaimForm):
    """The same claim from someone not on the import list: who they are, to confirm by
    e-mail."""

    name = StringField(_l("Your name"))
    email = StringField(_l("Your e-mail address"))
    phone = StringField(_l("Phone (optional)"))

    def claimant(self, locale: str) -> Claimant:
        return Claimant(name=self.name.data or "", email=self.email.data or "",
                        phone=self.phone.data or "", locale=locale)


class TriageForm(FlaskForm):
    """An agent's decision on a claim: the customer it matches (or none: create one), the
    amount when the claimant stated none, or the reason of a rejection."""

    customer_id = HiddenField()
    amount = StringField(_l("Amount of the case"))
    reason = TextAreaField(_l("Reason (e-mailed to the claimant)"))
