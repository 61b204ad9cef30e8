"""The form that starts a letter run (on the event's letters page)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField


class StartForm(FlaskForm):
    source = SelectField(_l("What the letters carry"), choices=[],
                         validate_choice=False,  # the service says why a choice is refused
                         render_kw={"data-user-content": ""})  # notice titles, programme names
    with_zip = BooleanField(_l("Also one PDF per customer, in a ZIP"))

    def offer(self, choices: list[tuple[str, str]]) -> StartForm:
        self.source.choices = choices
        return self
