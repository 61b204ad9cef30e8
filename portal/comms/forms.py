"""The communications lead's form (on the event's page)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField

from portal.accounts import User


def _optional_int(value: object) -> int | None:
    return int(value) if value not in (None, "", "None") else None


class LeadForm(FlaskForm):
    lead_id = SelectField(_l("Communications lead"), choices=[], coerce=_optional_int,
                          validate_choice=False,  # the service says why a choice is refused
                          render_kw={"data-user-content": ""})  # people's names

    def offer(self, people: list[User]) -> LeadForm:
        self.lead_id.choices = [("", "—")] + [(u.id, u.name) for u in people]
        return self
