"""Payout forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from portal.customers.payout import METHOD_LABELS
from portal.extensions import db
from portal.i18n import locale_code
from portal.payouts.models import METHODS
from portal.programmes.models import Programme, ProgrammeStatus

# Programmes whose cases exist (generation started) may have cases to pay.
WITH_CASES = (ProgrammeStatus.GENERATING, ProgrammeStatus.RUNNING, ProgrammeStatus.CLOSED)
NO_PROGRAMME = ""


def programme_choices() -> list[tuple[str, object]]:
    programmes = db.session.scalars(select(Programme).where(Programme.status.in_(WITH_CASES))
                                    .order_by(Programme.id.desc()))
    return [(NO_PROGRAMME, _l("No programme (ordinary cases)")),
            *((str(p.id), f"{p.name_in(locale_code())} · {p.currency}") for p in programmes)]


class PrepareForm(FlaskForm):
    """What a batch holds: a programme's cases or ordinary ones, one currency, one method."""

    programme_id = SelectField(_l("Programme (or ordinary cases)"), choices=programme_choices,
                               validate_choice=True)
    currency = StringField(_l("Currency (ISO 4217)"), default="CNY",
                           validators=[DataRequired(), Length(min=3, max=3)])
    method = SelectField(_l("Payout method"),
                         choices=[(m, METHOD_LABELS[m]) for m in METHODS])

    def chosen_programme(self) -> int | None:
        value = self.programme_id.data or NO_PROGRAMME
        return int(value) if value.isdigit() else None


class BatchActionForm(FlaskForm):
    """Release or cancel: the version of the batch the page showed."""

    lock_version = HiddenField()


class FileForm(FlaskForm):
    format = SelectField(_l("File"), choices=[])
    profile = SelectField(_l("Bank profile (CSV)"), choices=[])
