"""Forms of the lifecycle pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange


class RetentionForm(FlaskForm):
    days = IntegerField(_l("Days after an event closed"),
                        validators=[DataRequired(), NumberRange(min=1, max=36500)])


class EraseForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=500)])
