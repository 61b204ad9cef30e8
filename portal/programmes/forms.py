"""Forms of the programmes' pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired


class EntitlementImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired()])
