"""The form of a bank result file's upload."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired


class ResultUploadForm(FlaskForm):
    file = FileField(_l("Result file (CSV, camt.054 or pain.002)"), validators=[FileRequired()])
