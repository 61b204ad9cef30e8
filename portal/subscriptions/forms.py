"""The subscription forms. The one on the cached public pages carries no CSRF token: the
view checks that it came from this site (``Origin``, else ``Referer``), as "Check my case"
does."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Regexp

LANGUAGES = [("zh_CN", "中文"), ("en", "English")]


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _email_field() -> StringField:
    return StringField(_l("Your e-mail address"), filters=[_strip], validators=[
        DataRequired(_l("Enter your e-mail address.")), Length(max=254),
        Email(_l("Enter an e-mail address, such as name@example.com."))])


class SubscribeForm(FlaskForm):
    class Meta:
        csrf = False  # on cached public pages: see the module's docstring

    email = _email_field()
    locale = RadioField(_l("Language of the e-mails"), choices=LANGUAGES, default="zh_CN",
                        validators=[DataRequired(_l("Choose a language."))])
    event = HiddenField()

    def event_id(self) -> int | None:
        raw = (self.event.data or "").strip()
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


class CodeRequestForm(FlaskForm):
    email = _email_field()


class CodeForm(FlaskForm):
    email = HiddenField()
    code = StringField(_l("Code from the e-mail"), filters=[_strip], validators=[
        DataRequired(_l("Enter the code from the e-mail.")),
        Regexp(r"^\d{6}$", message=_l("The code has 6 digits."))])


class ChangeForm(FlaskForm):
    locale = RadioField(_l("Language of the e-mails"), choices=LANGUAGES)
    event = SelectField(_l("Which notices"), choices=[], validate_choice=False)

    def event_id(self) -> int | None:
        raw = (self.event.data or "").strip()
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None
