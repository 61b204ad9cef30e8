"""The contact details notice templates fill in: the hotline and the contact e-mail. An admin
sets them; until then they come from the configuration (``PORTAL_CONTACT_PHONE``,
``PORTAL_CONTACT_EMAIL``)."""

from __future__ import annotations

import re

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.accounts import User
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.notices.models import NoticeSetting

SETTING_LABELS = {"contact_phone": _l("Hotline"), "contact_email": _l("Contact e-mail")}
CONTACT_KEYS = {"contact_phone": "PORTAL_CONTACT_PHONE", "contact_email": "PORTAL_CONTACT_EMAIL"}
# Digits with the separators a hotline is written with: 400-800-1234, +86 (10) 1234 5678.
PHONE = re.compile(r"\+?[0-9][0-9 ()\-]{2,28}[0-9]")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def contact_details() -> dict[str, str]:
    """The hotline and contact e-mail notices name, by placeholder name."""
    stored = {row.key: row.value for row in db.session.scalars(
        db.select(NoticeSetting).where(NoticeSetting.key.in_(CONTACT_KEYS)))}
    return {key: stored.get(key) or current_app.config[config_key]
            for key, config_key in CONTACT_KEYS.items()}


def _checked(phone: str, email: str) -> dict[str, str]:
    """Both values trimmed, or an InvalidContact naming each bad field."""
    values = {"contact_phone": phone.strip(), "contact_email": email.strip()}
    errors = {}
    if not PHONE.fullmatch(values["contact_phone"]):
        errors["contact_phone"] = _("Enter a phone number, such as 400-800-1234.")
    if len(values["contact_email"]) > 254 or not EMAIL.fullmatch(values["contact_email"]):
        errors["contact_email"] = _("Enter an e-mail address, such as support@example.com.")
    if errors:
        raise InvalidContact(errors)
    return values


class InvalidContact(RuleViolation):
    """Every bad field of the contact form, each with its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        field, message = next(iter(errors.items()))
        super().__init__(message, field=field)
        self.errors = errors


def save_contact(*, phone: str, email: str, actor: User) -> int:
    """Store the hotline and the contact e-mail (all or nothing; flushed, the caller commits).
    Returns how many changed; each change is audited."""
    values = _checked(phone, email)
    current = contact_details()
    changed = 0
    for key, value in values.items():
        if current[key] == value:
            continue
        row = db.session.get(NoticeSetting, key)
        if row is None:
            db.session.add(NoticeSetting(key=key, value=value))
        else:
            row.value = value
        # A company hotline or mailbox, not a person's: kept in clear like other settings.
        audit.record("settings.notice_contact", audit.SETTING, f"notice:{key}",
                     N_("Notice setting %(setting)s changed",
                        setting=term("notice_setting", key)), before={"value": current[key]},
                     after={"value": value}, actor=actor)
        changed += 1
    db.session.flush()
    return changed
