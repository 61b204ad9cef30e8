"""Event forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from portal.events.models import (
    CAUSES,
    DEPARTMENT_LABELS,
    DEPARTMENTS,
    LABELS,
    SEVERITIES,
    STAKEHOLDER_KINDS,
    EventKind,
)


def _optional_int(value: object) -> int | None:
    return int(value) if value not in (None, "", "None") else None


def _choices(values: tuple[str, ...] | list[str]) -> list[tuple[str, object]]:
    return [(v, LABELS[v]) for v in values]


class EventForm(FlaskForm):
    title = StringField(_l("Internal title"), validators=[DataRequired(), Length(max=200)])
    title_zh = StringField(_l("Title in Chinese (for notices)"), validators=[Length(max=200)])
    title_en = StringField(_l("Title in English (for notices)"), validators=[Length(max=200)])
    public_title_zh = StringField(_l("Public title in Chinese"),
                                  validators=[Length(max=200)])
    public_title_en = StringField(_l("Public title in English"),
                                  validators=[Length(max=200)])
    kind = SelectField(_l("Kind"), choices=_choices([k.value for k in EventKind]))
    severity = SelectField(_l("Severity"), choices=_choices(SEVERITIES))
    cause = SelectField(_l("Cause"), choices=_choices(CAUSES))
    summary = TextAreaField(_l("Summary"), validators=[Length(max=5000)])
    accepts_claims = BooleanField(_l("Its public notices accept claims from affected people "
                                     "(those not on the import list confirm by e-mail, then "
                                     "wait for triage)"))
    self_service = BooleanField(_l("Customers may ask for a link to their case page on the "
                                   "public notice pages (Check my case)"), default=True)
    with_checklist = BooleanField(_l("Start the checklist from the template of this kind"),
                                  default=True)

    def titles(self) -> dict[str, str | None]:
        """The optional titles, by the names the event services take."""
        return {name: getattr(self, name).data for name in (
            "title_zh", "title_en", "public_title_zh", "public_title_en")}


class EventEditForm(EventForm):
    """Editing keeps the kind: the phases depend on it."""

    kind = None  # type: ignore[assignment]
    with_checklist = None  # type: ignore[assignment]


class StatusForm(FlaskForm):
    status = SelectField(_l("New status"), choices=[])


class TaskForm(FlaskForm):
    department = SelectField(_l("Department"), choices=[
        (d, DEPARTMENT_LABELS[d]) for d in DEPARTMENTS])
    title = StringField(_l("Task"), validators=[DataRequired(), Length(max=200)])
    owner_id = SelectField(_l("Owner"), choices=[], coerce=_optional_int,
                           render_kw={"data-user-content": ""})  # people's names
    due_at = DateTimeLocalField(_l("Due"), format="%Y-%m-%dT%H:%M", validators=[Optional()])


class AssignForm(FlaskForm):
    owner_id = SelectField(_l("Owner"), choices=[], coerce=_optional_int,
                           render_kw={"data-user-content": ""})  # people's names
    due_at = DateTimeLocalField(_l("Due"), format="%Y-%m-%dT%H:%M", validators=[Optional()])


class TimelineForm(FlaskForm):
    occurred_at = DateTimeLocalField(_l("When (empty: now)"), format="%Y-%m-%dT%H:%M",
                                     validators=[Optional()])
    text = TextAreaField(_l("What happened"), validators=[DataRequired(), Length(max=5000)])


class StakeholderForm(FlaskForm):
    kind = SelectField(_l("Kind"), choices=list(STAKEHOLDER_KINDS.items()))
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    contact = StringField(_l("Contact (person, phone, e-mail)"), validators=[Length(max=300)])


class TemplateItemForm(FlaskForm):
    kind = SelectField(_l("Kind"), choices=_choices([k.value for k in EventKind]))
    department = SelectField(_l("Department"), choices=[
        (d, DEPARTMENT_LABELS[d]) for d in DEPARTMENTS])
    title = StringField(_l("Task"), validators=[DataRequired(), Length(max=200)])
    due_hours = IntegerField(_l("Due (hours after the event opens)"), default=24,
                             validators=[NumberRange(min=0, max=24 * 365)])
