"""The update cadence an admin sets per severity: "the next public update is due within N
minutes of the last one" for an incident's published notices; 0 (or empty) switches it off
for that severity. Until an admin changes a severity, its default below holds."""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import gettext as _

from portal.accounts import User
from portal.audit import services as audit
from portal.comms.models import CadencePolicy
from portal.errors import RuleViolation
from portal.events.models import SEVERITIES
from portal.extensions import db
from portal.i18n import N_, term

DEFAULT_CADENCE = {"sev1": 60, "sev2": 120, "sev3": 240, "sev4": 0}
# A day at most: a longer promise is no cadence during an incident.
MAX_MINUTES = 24 * 60
# The lead is reminded this many minutes before the next update is due.
REMINDER_LEAD_MINUTES = 15


def cadence() -> dict[str, int]:
    """Minutes per severity (0: off), the admin's where set, the defaults elsewhere."""
    stored = {row.severity: row.minutes for row in db.session.scalars(db.select(CadencePolicy))}
    return {severity: stored.get(severity, DEFAULT_CADENCE[severity]) for severity in SEVERITIES}


def field_name(severity: str) -> str:
    return f"cadence_{severity}"


class InvalidCadence(RuleViolation):
    """Every bad field of the cadence form, each with its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        field, message = next(iter(errors.items()))
        super().__init__(message, field=field)
        self.errors = errors


def _parse(raw: str | None) -> int | str:
    """The minutes, or the message saying what is wrong with ``raw``."""
    text = (raw or "").strip()
    if not text:
        return 0
    if not text.isdigit():
        return _("Enter whole minutes, such as 60 (0 or empty: off).")
    minutes = int(text)
    if minutes and not REMINDER_LEAD_MINUTES < minutes <= MAX_MINUTES:
        return _("Between %(low)d and %(high)d minutes, or 0 for off.",
                 low=REMINDER_LEAD_MINUTES + 1, high=MAX_MINUTES)
    return minutes


def save_cadence(raw: Mapping[str, str | None], *, actor: User) -> int:
    """Store the minutes of every severity (``raw``: the form's text by severity), all or
    nothing (flushed, the caller commits); returns how many changed, each audited."""
    parsed = {severity: _parse(raw.get(severity)) for severity in SEVERITIES}
    errors = {field_name(s): value for s, value in parsed.items() if isinstance(value, str)}
    if errors:
        raise InvalidCadence(errors)
    current = cadence()
    changed = 0
    for severity, minutes in parsed.items():
        assert isinstance(minutes, int)
        if current[severity] == minutes:
            continue
        row = db.session.get(CadencePolicy, severity)
        if row is None:
            db.session.add(CadencePolicy(severity=severity, minutes=minutes))
        else:
            row.minutes = minutes
        audit.record("settings.cadence", audit.SETTING, f"cadence:{severity}",
                     N_("Update cadence for %(severity)s: %(before)s → %(after)s min",
                        severity=term("event", severity),
                        before=current[severity] or term("value", "none"),
                        after=minutes or term("value", "none")),
                     before={"minutes": current[severity]}, after={"minutes": minutes},
                     actor=actor)
        changed += 1
    db.session.flush()
    return changed
