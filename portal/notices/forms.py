"""Notice drafting and action forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from portal.notices.models import STATUS_LABELS

STARTER_CHOICES = [
    ("", _l("Blank")),
    ("outage", _l("Service outage")),
    ("shutdown", _l("Business shutdown announcement")),
    ("maintenance", _l("Scheduled maintenance")),
    ("compensation", _l("Compensation offer")),
]


class NoticeForm(FlaskForm):
    audience = SelectField(_l("Audience"), choices=[
        ("public", STATUS_LABELS["public"]), ("direct", STATUS_LABELS["direct"])])
    title_zh_CN = StringField(_l("Title (Chinese)"), validators=[Length(max=300)])
    body_zh_CN = TextAreaField(_l("Text (Chinese, Markdown)"), validators=[Length(max=50_000)])
    title_en = StringField(_l("Title (English)"), validators=[Length(max=300)])
    body_en = TextAreaField(_l("Text (English, Markdown)"), validators=[Length(max=50_000)])
    planned_publish_at = DateTimeLocalField(
        _l("Publish at (optional)"), format="%Y-%m-%dT%H:%M", validators=[Optional()])
    publish_on_approval = BooleanField(
        _l("Without a time: publish as soon as legal approves (otherwise someone publishes "
           "it by hand once approved)"))
    based_on = HiddenField()

    def content(self) -> dict[str, dict[str, str]]:
        return {
            "zh_CN": {"title": self.title_zh_CN.data or "", "body": self.body_zh_CN.data or ""},
            "en": {"title": self.title_en.data or "", "body": self.body_en.data or ""},
        }


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=2000)])


class WithdrawForm(ReasonForm):
    hide = BooleanField(_l("Also hide it from the public pages"))


class DiffForm(FlaskForm):
    class Meta:
        csrf = False

    a = IntegerField(validators=[Optional()])
    b = IntegerField(validators=[Optional()])


class StarterForm(FlaskForm):
    class Meta:
        csrf = False

    starter = SelectField(_l("Start from"), choices=STARTER_CHOICES, validators=[Optional()])


class ContactForm(FlaskForm):
    contact_phone = StringField(_l("Hotline"), validators=[DataRequired(), Length(max=30)])
    contact_email = StringField(_l("Contact e-mail"),
                                validators=[DataRequired(), Length(max=254)])
