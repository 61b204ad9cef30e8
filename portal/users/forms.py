"""Admin forms for staff accounts."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length

from portal.accounts import ROLE_LABELS, Role


def role_choices() -> list[tuple[str, object]]:
    return [(r.value, ROLE_LABELS[r]) for r in Role]


class UserCreateForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=254)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    role = SelectField(_l("Role"), choices=role_choices, validators=[DataRequired()])


class UserEditForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    role = SelectField(_l("Role"), choices=role_choices, validators=[DataRequired()])
