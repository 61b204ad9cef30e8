"""The audit page's filter form (GET parameters, no CSRF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Length, Optional

from portal.audit.services import AuditFilter


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    actor = SelectField(_l("Actor"), coerce=str, validators=[Optional()])
    # Actions and subject types are codes of the trail (case.paid, customer), not words.
    action = SelectField(_l("Action"), coerce=str, validators=[Optional()],
                         render_kw={"translate": "no"})
    subject_type = SelectField(_l("Subject type"), coerce=str, validators=[Optional()],
                               render_kw={"translate": "no"})
    subject_id = StringField(_l("Subject id"), validators=[Optional(), Length(max=64)])
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])

    def to_filter(self) -> AuditFilter:
        actor = self.actor.data
        return AuditFilter(
            actor_id=int(actor) if actor and actor.isdigit() else None,
            action=self.action.data or None,
            subject_type=self.subject_type.data or None,
            subject_id=(self.subject_id.data or "").strip() or None,
            date_from=self.date_from.data,
            date_to=self.date_to.data,
        )
