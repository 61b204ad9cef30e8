"""Legal's stamp on a PDF (notices, post-mortems), and the admin setting that chooses whether
it names the legal department or the approving person.

The setting is read when a PDF is rendered: PDFs made before a change keep their stamp."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.accounts import User
from portal.audit import services as audit
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, term
from portal.signoffs.models import SignoffRequest, SignoffSetting, SignoffStatus

STAMP_SETTING = "pdf_stamp"
DEPARTMENT, APPROVER = "department", "approver"
STAMP_CHOICES = {DEPARTMENT: _l("Legal department"), APPROVER: _l("The approver's name")}


@dataclass
class Stamp:
    """What the PDF says about its approval; ``by`` is the approver's name when the setting
    asks for it, else None (the PDF names the legal department, in its language)."""

    approved: bool
    by: str | None = None
    at: datetime | None = None
    hash_prefix: str | None = None
    emergency: bool = False


def stamp_mode() -> str:
    row = db.session.get(SignoffSetting, STAMP_SETTING)
    return row.value if row is not None and row.value in STAMP_CHOICES else DEPARTMENT


def stamp_for(signoff: SignoffRequest | None, emergency: bool = False) -> Stamp:
    """The stamp of a granted (not retroactive) sign-off; otherwise an unapproved one."""
    if signoff is not None and signoff.status == SignoffStatus.APPROVED and not signoff.retroactive:
        named = signoff.decided_by is not None and stamp_mode() == APPROVER
        return Stamp(True, signoff.decided_by.name if named else None, signoff.decided_at,
                     signoff.snapshot_hash[:12])
    return Stamp(False, emergency=emergency)


def set_stamp_mode(mode: str, *, actor: User) -> bool:
    """Choose what PDFs rendered from now on name as the approver (flushed, not committed);
    False when it already was that."""
    if mode not in STAMP_CHOICES:
        raise RuleViolation(_("Choose one of the options."), field="stamp")
    before = stamp_mode()
    if before == mode:
        return False
    row = db.session.get(SignoffSetting, STAMP_SETTING)
    if row is None:
        db.session.add(SignoffSetting(name=STAMP_SETTING, value=mode))
    else:
        row.value = mode
    db.session.flush()
    audit.record("settings.pdf_stamp", audit.SETTING, STAMP_SETTING,
                 N_("PDF stamp set to %(stamp)s", stamp=term("pdf_stamp", mode)),
                 before={"stamp": before}, after={"stamp": mode}, actor=actor)
    return True
