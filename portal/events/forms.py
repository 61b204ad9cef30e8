"""Event forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from portal.events.models import CAUSES, LABELS, SEVERITIES, EventKind


def _choices(values: tuple[str, ...] | list[str]) -> list[tuple[str, object]]:
    return [(v, LABELS[v]) for v in values]


class EventForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    kind = SelectField(_l("Kind"), choices=_choices([k.value for k in EventKind]))
    severity = SelectField(_l("Severity"), choices=_choices(SEVERITIES))
    cause = SelectField(_l("Cause"), choices=_choices(CAUSES))
    summary = TextAreaField(_l("Summary"), validators=[Length(max=5000)])


class EventEditForm(EventForm):
    """Editing keeps the kind: the phases depend on it."""

    kind = None  # type: ignore[assignment]


class StatusForm(FlaskForm):
    status = SelectField(_l("New status"), choices=[])
