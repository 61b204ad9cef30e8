"""Forms every area shares."""

from __future__ import annotations

from flask_wtf import FlaskForm


class ConfirmForm(FlaskForm):
    """A bare form: CSRF token only, for buttons that change state."""
