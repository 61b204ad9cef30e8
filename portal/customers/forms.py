"""Customer forms."""

from __future__ import annotations

import unicodedata

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import EmailField, Field, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError


def one_line(form: FlaskForm, field: Field) -> None:
    """Refuse line breaks and other control characters (C0, DEL, C1, U+2028/9): a name with
    a newline breaks mail headers and CSV reports. A browser's one-line input cannot type
    them, but a crafted request can."""
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in field.data or ""):
        raise ValidationError(_l("Line breaks and other control characters are not allowed "
                                 "here."))


class CustomerForm(FlaskForm):
    external_ref = StringField(_l("Customer reference"), validators=[
        DataRequired(), Length(max=64), one_line])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200), one_line])
    company = StringField(_l("Company"), validators=[Optional(), Length(max=200), one_line])
    email = EmailField(_l("E-mail"), validators=[Optional(), Length(max=254), one_line])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40), one_line])
    locale = SelectField(_l("Language"), choices=[("zh_CN", "简体中文"), ("en", "English")])
    tags = StringField(_l("Tags (separated by ;)"), validators=[
        Optional(), Length(max=500), one_line])

    def raw(self) -> dict[str, str]:
        return {name: self[name].data or "" for name in
                ("external_ref", "name", "company", "email", "phone", "locale", "tags")}


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired()])
