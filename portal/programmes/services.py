"""Programme rules of work: create and edit (checked by ``Rules.parse``), legal's one sign-off
of the whole programme, and what voids it.

The sign-off snapshot binds the rules, the settings, the terms in both languages, the SHA-256
of the event's entitlement list and of the computed per-customer amount list, the eligible
count and the totals. Any edit of a programme awaiting or holding sign-off voids the request
and returns it to draft; so does a change of the event's entitlements (the receiver
:func:`on_entitlements_changed`, connected in ``portal.wiring``). Before cases are created,
:func:`binding_holds` recomputes everything and compares it with what legal approved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from portal.accounts import User
from portal.audit import services as audit
from portal.cases.settings import parse_currency
from portal.errors import Conflict, RuleViolation
from portal.events.models import Event
from portal.extensions import db
from portal.i18n import N_, localised, term
from portal.models import utcnow
from portal.money import parse_amount
from portal.programmes.models import (
    LOW_VALUE_ACTIONS,
    MODES,
    Programme,
    ProgrammeStatus,
)
from portal.programmes.preview import Preview, preview
from portal.programmes.rules import Rules, entitlements_digest
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest, SignoffStatus

SUBJECT = "programme"
KINDS = ("refund", "compensation")
MAX_NAME_LENGTH = 200
MAX_TERMS_LENGTH = 20_000
# What an edit may still change: until legal's grant is used to create cases.
EDITABLE = (ProgrammeStatus.DRAFT, ProgrammeStatus.AWAITING_SIGNOFF, ProgrammeStatus.APPROVED)
SIGNED = (ProgrammeStatus.AWAITING_SIGNOFF, ProgrammeStatus.APPROVED)
SETTINGS = ("name_zh", "name_en", "kind", "currency", "mode", "deadline", "calculation_date",
            "rules", "low_value_threshold", "low_value_action", "budget", "terms_zh",
            "terms_en")
# The settings' names in the trail ("edited: rules, terms (English)").
FIELD_LABELS = {
    "name_zh": _l("name (Chinese)"), "name_en": _l("name (English)"), "kind": _l("kind"),
    "currency": _l("currency"), "mode": _l("mode"), "deadline": _l("deadline"),
    "calculation_date": _l("calculation date"), "rules": _l("rules"),
    "low_value_threshold": _l("low-value threshold"),
    "low_value_action": _l("below the threshold"), "budget": _l("budget"),
    "terms_zh": _l("terms (Chinese)"), "terms_en": _l("terms (English)"),
}


def _scope(programme: Programme) -> str:
    return f"programme:{programme.id}"


def _title(programme: Programme) -> Any:
    return localised({"zh_CN": programme.name_zh, "en": programme.name_en})


# --- input -----------------------------------------------------------------------------------


def _text(data: Mapping[str, Any], name: str, limit: int, *, required: bool) -> str:
    value = str(data.get(name) or "").strip()
    if required and not value:
        raise RuleViolation(_("This field is required."), field=name)
    if len(value) > limit:
        raise RuleViolation(_("At most %(n)d characters.", n=limit), field=name)
    return value


def _date(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value or "").strip())
    except ValueError:
        raise RuleViolation(_("Enter a date such as 2026-12-31."), field=name) from None


def _optional_amount(value: Any, name: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_amount(value, field=name)


def clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """The programme's settings from a form's or a caller's values, checked; each problem is
    a ``RuleViolation`` naming its field."""
    values: dict[str, Any] = {
        "name_zh": _text(data, "name_zh", MAX_NAME_LENGTH, required=True),
        "name_en": _text(data, "name_en", MAX_NAME_LENGTH, required=True),
        "terms_zh": _text(data, "terms_zh", MAX_TERMS_LENGTH, required=False),
        "terms_en": _text(data, "terms_en", MAX_TERMS_LENGTH, required=False),
    }
    kind = str(data.get("kind") or "")
    if kind not in KINDS:
        raise RuleViolation(_("Choose refund or compensation."), field="kind")
    values["kind"] = kind
    values["currency"] = parse_currency(str(data.get("currency") or ""))
    mode = str(data.get("mode") or "proactive")
    if mode not in MODES:
        raise RuleViolation(_("Choose proactive or opt-in."), field="mode")
    values["mode"] = mode
    deadline = data.get("deadline") or None
    if isinstance(deadline, str):
        try:
            deadline = datetime.fromisoformat(deadline)
        except ValueError:
            raise RuleViolation(_("Enter a date and time."), field="deadline") from None
    if mode == "opt_in" and deadline is None:
        raise RuleViolation(_("An opt-in programme needs a deadline for acceptances."),
                            field="deadline")
    values["deadline"] = deadline if mode == "opt_in" else None
    values["calculation_date"] = _date(data.get("calculation_date"), "calculation_date")
    values["rules"] = Rules.parse(data.get("rules") or {}).to_json()
    values["low_value_threshold"] = _optional_amount(data.get("low_value_threshold"),
                                                     "low_value_threshold")
    action = str(data.get("low_value_action") or "pay")
    if action not in LOW_VALUE_ACTIONS:
        raise RuleViolation(_("Choose what happens below the threshold."),
                            field="low_value_action")
    values["low_value_action"] = action
    values["budget"] = _optional_amount(data.get("budget"), "budget")
    return values


def audit_state(programme: Programme) -> dict[str, Any]:
    """The programme's settings for the trail (no personal data: names and terms as set)."""
    return {
        "status": programme.status, "kind": programme.kind, "currency": programme.currency,
        "mode": programme.mode,
        "deadline": programme.deadline.isoformat() if programme.deadline else None,
        "calculation_date": programme.calculation_date.isoformat(), "rules": programme.rules,
        "low_value_threshold": (None if programme.low_value_threshold is None
                                else str(programme.low_value_threshold)),
        "low_value_action": programme.low_value_action,
        "budget": None if programme.budget is None else str(programme.budget),
        "name_zh": programme.name_zh, "name_en": programme.name_en,
        "terms_sha256": {"zh_CN": _sha(programme.terms_zh), "en": _sha(programme.terms_en)},
    }


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _same(programme: Programme, name: str, value: Any) -> bool:
    current = getattr(programme, name)
    if isinstance(current, datetime) and isinstance(value, datetime):
        return current.replace(tzinfo=None) == value.replace(tzinfo=None)
    return bool(current == value)


# --- create and edit -------------------------------------------------------------------------


def create_programme(event: Event, data: Mapping[str, Any], *, actor: User) -> Programme:
    """A draft programme of ``event``."""
    values = clean(data)
    now = utcnow()
    programme = Programme(event_id=event.id, status=ProgrammeStatus.DRAFT,
                          created_by_id=actor.id, created_at=now, updated_at=now, **values)
    db.session.add(programme)
    db.session.flush()
    audit.record("programme.create", SUBJECT, programme.id,
                 N_("Programme “%(name)s” created", name=_title(programme)),
                 after=audit_state(programme), actor=actor)
    return programme


def update_programme(programme: Programme, data: Mapping[str, Any], *,
                     expected_version: int | None, actor: User) -> bool:
    """Save the settings; False when nothing changed. An edit of a programme awaiting or
    holding sign-off voids it and returns the programme to draft."""
    if expected_version is not None and expected_version != programme.lock_version:
        raise Conflict(_("Someone else saved this programme while you were editing. Reload "
                         "the page; your change has not been saved."))
    if programme.status not in EDITABLE:
        raise RuleViolation(_("Cases are being or have been created under this programme; "
                              "its rules can no longer change."))
    values = clean(data)
    changed = [name for name in SETTINGS if not _same(programme, name, values[name])]
    if not changed:
        return False
    before = audit_state(programme)
    was_signed = programme.status in SIGNED
    for name in changed:
        setattr(programme, name, values[name])
    programme.updated_at = utcnow()
    if was_signed:
        programme.status = ProgrammeStatus.DRAFT
    try:
        db.session.flush()
    except StaleDataError:
        raise Conflict(_("Someone else saved this programme at the same moment. Reload the "
                         "page; your change has not been saved.")) from None
    if was_signed:
        signoffs.void_scope(_scope(programme), "programme edited", actor=actor)
    audit.record("programme.edit", SUBJECT, programme.id,
                 N_("Programme “%(name)s” edited: %(fields)s", name=_title(programme),
                    fields=[term("programme_field", name) for name in changed]),
                 before=before, after=audit_state(programme), actor=actor)
    return True


# --- legal's sign-off ------------------------------------------------------------------------


def snapshot(programme: Programme, outcome: Preview, entitlements_sha256: str) -> dict[str, Any]:
    """Exactly what legal approves."""
    return {
        "programme": programme.id, "event": programme.event_id,
        "name": {"zh_CN": programme.name_zh, "en": programme.name_en},
        "kind": programme.kind, "mode": programme.mode, "currency": programme.currency,
        "deadline": programme.deadline.isoformat() if programme.deadline else None,
        "calculation_date": programme.calculation_date.isoformat(),
        "rules": programme.rules,
        "low_value": {"threshold": (None if programme.low_value_threshold is None
                                    else str(programme.low_value_threshold)),
                      "action": programme.low_value_action,
                      "written_off_count": outcome.written_off_count,
                      "written_off_total": str(outcome.written_off_total),
                      "paid_without_asking_count": outcome.low_value_paid_count},
        "budget": None if programme.budget is None else str(programme.budget),
        "terms": {"zh_CN": programme.terms_zh, "en": programme.terms_en},
        "entitlements_sha256": entitlements_sha256,
        "amounts_sha256": outcome.amounts_sha256,
        "eligible_count": outcome.eligible_count,
        "totals": {currency: str(total) for currency, total in sorted(outcome.totals.items())},
    }


def request_signoff(programme: Programme, *, actor: User,
                    acknowledge_budget: bool = False) -> SignoffRequest:
    """Compute the programme once more, bind its digests and ask legal for one sign-off."""
    if programme.status != ProgrammeStatus.DRAFT:
        raise RuleViolation(_("Only a draft programme can be sent for sign-off."))
    for name in ("terms_zh", "terms_en"):
        if not getattr(programme, name).strip():
            raise RuleViolation(_("Write the offer terms in both languages first."), field=name)
    entitlements_sha256 = entitlements_digest(programme.event_id)
    outcome = preview(programme)
    if outcome.eligible_count == 0:
        raise RuleViolation(_("No customer is eligible under these rules."))
    if outcome.over_budget and not acknowledge_budget:
        raise RuleViolation(_("The total of %(total)s %(currency)s is over the budget of "
                              "%(budget)s: acknowledge it to ask for sign-off.",
                              total=outcome.total, currency=programme.currency,
                              budget=programme.budget), field="acknowledge_budget")
    current = snapshot(programme, outcome, entitlements_sha256)
    request = signoffs.open_request(
        subject_type=SUBJECT, subject_id=programme.id, scope=_scope(programme),
        title=N_("Programme · %(name)s", name=_title(programme)), snapshot=current,
        author_id=programme.created_by_id, requested_by=actor)
    before = programme.status
    programme.status = ProgrammeStatus.AWAITING_SIGNOFF
    programme.entitlements_sha256 = entitlements_sha256
    programme.amounts_sha256 = outcome.amounts_sha256
    programme.eligible_count = outcome.eligible_count
    programme.signoff_id = request.id
    programme.updated_at = utcnow()
    try:
        db.session.flush()
    except StaleDataError:
        raise Conflict(_("Someone else changed this programme at the same moment. Reload the "
                         "page.")) from None
    audit.record("programme.signoff_request", SUBJECT, programme.id,
                 N_("Legal sign-off requested for programme “%(name)s”", name=_title(programme)),
                 before={"status": before},
                 after={"status": programme.status, "signoff_id": request.id,
                        "snapshot_hash": request.snapshot_hash,
                        "entitlements_sha256": entitlements_sha256,
                        "amounts_sha256": outcome.amounts_sha256,
                        "eligible_count": outcome.eligible_count,
                        "budget_acknowledged": bool(outcome.over_budget and acknowledge_budget)},
                 actor=actor)
    return request


def signoff_request(programme: Programme) -> SignoffRequest | None:
    return (db.session.get(SignoffRequest, programme.signoff_id)
            if programme.signoff_id else None)


def holding_preview(programme: Programme) -> Preview | None:
    """What legal's grant covers, recomputed now, when it still holds: the programme's request
    is approved and the snapshot recomputed (rules, terms, entitlement and amount digests,
    totals) is the one approved. None when it does not hold."""
    request = signoff_request(programme)
    if request is None or request.status != SignoffStatus.APPROVED:
        return None
    entitlements_sha256 = entitlements_digest(programme.event_id)
    if entitlements_sha256 != programme.entitlements_sha256:
        return None
    outcome = preview(programme)
    if outcome.amounts_sha256 != programme.amounts_sha256:
        return None
    if not signoffs.check_binding(request, snapshot(programme, outcome, entitlements_sha256)):
        return None
    return outcome


def binding_holds(programme: Programme) -> bool:
    """Whether legal's grant still covers the programme (see :func:`holding_preview`)."""
    return holding_preview(programme) is not None


def _back_to_draft(programme: Programme, reason: str, *, actor: User | None) -> None:
    """Void the standing sign-off and return the programme to draft (audited)."""
    before = programme.status
    programme.status = ProgrammeStatus.DRAFT
    programme.updated_at = utcnow()
    db.session.flush()
    signoffs.void_scope(_scope(programme), reason, actor=actor)
    audit.record("programme.draft", SUBJECT, programme.id,
                 N_("Programme “%(name)s” back to draft (%(reason)s)", name=_title(programme),
                    reason=term("signoff_void", reason)),
                 before={"status": before}, after={"status": programme.status}, actor=actor)


def after_signoff_decision(request: SignoffRequest, actor: User) -> str | None:
    """Legal decided (registered in ``portal.wiring``): approved moves the programme to
    approved if the binding holds, anything else back to draft."""
    programme = db.session.get(Programme, request.subject_id)
    if programme is None or programme.signoff_id != request.id:
        return None
    if request.status == SignoffStatus.APPROVED:
        if not binding_holds(programme):
            _back_to_draft(programme, "entitlements changed", actor=actor)
            return _("The entitlements or amounts changed since the request: the sign-off is "
                     "void and the programme is back to draft.")
        programme.status = ProgrammeStatus.APPROVED
    else:
        programme.status = ProgrammeStatus.DRAFT
    programme.updated_at = utcnow()
    db.session.flush()
    audit.record(f"programme.signoff_{request.status}", SUBJECT, programme.id,
                 N_("Legal sign-off of programme “%(name)s”: %(decision)s",
                    name=_title(programme), decision=term("signoff_status", request.status)),
                 after={"status": programme.status, "signoff_id": request.id}, actor=actor)
    return None


def on_entitlements_changed(event_id: int, actor: User | None = None, **_kw: Any) -> None:
    """The event's entitlements changed (connected in ``portal.wiring``): programmes whose
    sign-off bound the old list go back to draft, their request voided."""
    programmes = db.session.scalars(select(Programme).where(
        Programme.event_id == event_id, Programme.status.in_(list(SIGNED)))).all()
    for programme in programmes:
        _back_to_draft(programme, "entitlements changed", actor=actor)


def for_event(event: Event) -> list[Programme]:
    return list(db.session.scalars(select(Programme).where(Programme.event_id == event.id)
                                   .order_by(Programme.id)))


# What legal's page shows of a programme's change since the last request legal decided.
SNAPSHOT_PARTS = {
    "name": _l("name"), "kind": _l("kind"), "mode": _l("mode"), "currency": _l("currency"),
    "deadline": _l("deadline"), "calculation_date": _l("calculation date"),
    "rules": _l("rules"), "low_value": _l("low-value threshold"), "budget": _l("budget"),
    "terms": _l("offer terms"), "entitlements_sha256": _l("entitlement list"),
    "amounts_sha256": _l("amount list"), "eligible_count": _l("eligible customers"),
    "totals": _l("totals"),
}


def signoff_changes(request: SignoffRequest) -> dict[str, Any] | None:
    """For the sign-off page (registered in ``portal.wiring``): which parts of the snapshot
    differ from the last request of the programme that legal decided, or None for the first."""
    previous = db.session.scalar(select(SignoffRequest).where(
        SignoffRequest.subject_type == SUBJECT, SignoffRequest.subject_id == request.subject_id,
        SignoffRequest.id < request.id, SignoffRequest.decided_by_id.is_not(None))
        .order_by(SignoffRequest.id.desc()).limit(1))
    if previous is None:
        return None
    old, new = previous.snapshot or {}, request.snapshot or {}
    changed = [str(label) for key, label in SNAPSHOT_PARTS.items() if old.get(key) != new.get(key)]
    return {"template": "programmes/_signoff_changes.html", "previous": previous,
            "changed": changed}
