"""Composing a mailing."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, SelectMultipleField, TextAreaField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from portal.mailings.audience import Audience
from portal.mailings.services import MailingInput


class CheckboxesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class MailingForm(FlaskForm):
    version_id = SelectField(_l("Notice (an approved version)"), coerce=int,
                             validators=[DataRequired()],
                             render_kw={"data-user-content": ""})  # notices' titles
    tags = CheckboxesField(_l("Tags (any of them; none ticked: everyone)"), choices=[])
    locales = CheckboxesField(_l("Language (none ticked: all)"),
                              choices=[("zh_CN", "简体中文"), ("en", "English")])
    case_statuses = CheckboxesField(_l("Case status (none ticked: with or without a case)"),
                                    choices=[])
    attach_pdf = BooleanField(_l("Attach the signed PDF of the notice"))
    greeting_zh = TextAreaField(_l("Greeting in Chinese"), validators=[Length(max=2000)],
                                render_kw={"lang": "zh-CN"})
    greeting_en = TextAreaField(_l("Greeting in English"), validators=[Length(max=2000)],
                                render_kw={"lang": "en"})

    def to_input(self) -> MailingInput:
        return MailingInput(
            version_id=self.version_id.data,
            audience=Audience.from_dict({"tags": self.tags.data, "locales": self.locales.data,
                                         "case_statuses": self.case_statuses.data}),
            attach_pdf=bool(self.attach_pdf.data),
            greeting_zh=self.greeting_zh.data or "", greeting_en=self.greeting_en.data or "")
