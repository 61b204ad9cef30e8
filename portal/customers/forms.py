"""Customer forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional


class CustomerForm(FlaskForm):
    external_ref = StringField(_l("Customer reference"), validators=[
        DataRequired(), Length(max=64)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    company = StringField(_l("Company"), validators=[Optional(), Length(max=200)])
    email = EmailField(_l("E-mail"), validators=[Optional(), Length(max=254)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    locale = SelectField(_l("Language"), choices=[("zh_CN", "简体中文"), ("en", "English")])
    tags = StringField(_l("Tags (separated by ;)"), validators=[
        Optional(), Length(max=500)])

    def raw(self) -> dict[str, str]:
        return {name: self[name].data or "" for name in
                ("external_ref", "name", "company", "email", "phone", "locale", "tags")}


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired()])
