"""Forms of a programme's mailings and of the review of late acceptances."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.mailings.audience import Audience
from portal.mailings.services import MailingInput


class ProgrammeMailingForm(FlaskForm):
    version_id = SelectField(_l("Notice (an approved version)"), coerce=int,
                             validators=[DataRequired()],
                             render_kw={"data-user-content": ""})
    greeting_zh = TextAreaField(_l("Greeting in Chinese"), validators=[Length(max=2000)],
                                render_kw={"lang": "zh-CN"})
    greeting_en = TextAreaField(_l("Greeting in English"), validators=[Length(max=2000)],
                                render_kw={"lang": "en"})

    def to_input(self) -> MailingInput:
        # The audience is the programme's (``programmes.mailing.draft_mailing`` sets it).
        return MailingInput(version_id=self.version_id.data, audience=Audience(),
                            attach_pdf=False, greeting_zh=self.greeting_zh.data or "",
                            greeting_en=self.greeting_en.data or "")
