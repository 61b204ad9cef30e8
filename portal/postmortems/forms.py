"""Post-mortem forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import Length, Optional

from portal.postmortems.models import MAX_STEP_LENGTH, STEP_TITLES, STEPS


def _step(key: str) -> TextAreaField:
    return TextAreaField(STEP_TITLES[key], validators=[Optional(), Length(max=MAX_STEP_LENGTH)],
                         render_kw={"rows": 8})


class PostmortemForm(FlaskForm):
    goals = _step("goals")
    narrative = _step("narrative")
    result = _step("result")
    causes = _step("causes")
    lessons = _step("lessons")
    conclusion = _step("conclusion")
    lock_version = HiddenField()

    def texts(self) -> dict[str, str]:
        return {key: getattr(self, key).data or "" for key in STEPS}
