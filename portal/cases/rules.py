"""The case status flow, in one table that the services, the buttons and the tests read.

Moves into ``awaiting_signoff``, out of it, and into ``paid`` are made by the services that
own them (a proposal above the threshold, legal's decision, a payment), never by a bare
status change; the table records who may trigger each and whether a comment is required.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from portal.accounts import Role

AGENTS = frozenset({Role.AGENT, Role.ADMIN})
LEGAL = frozenset({Role.LEGAL})


@dataclass(frozen=True)
class Transition:
    action: str
    source: str
    target: str
    roles: frozenset[Role]
    comment_required: bool
    label: object
    # Made by a dedicated service (sign-off, payment, proposal), not by change_status.
    via_service: bool = False


def _t(action: str, source: str, target: str, roles: frozenset[Role] = AGENTS,
       comment: bool = False, label: object = "", via: bool = False) -> Transition:
    return Transition(action, source, target, roles, comment, label, via)


OPEN_BEFORE_PAYMENT = ("new", "in_progress", "proposed", "awaiting_signoff", "approved")

TRANSITIONS: tuple[Transition, ...] = (
    _t("start", "new", "in_progress", label=_l("Start working")),
    _t("propose", "in_progress", "proposed", label=_l("Propose"), via=True),
    _t("propose_signoff", "in_progress", "awaiting_signoff", label=_l("Propose"), via=True),
    _t("approve", "proposed", "approved", label=_l("Approve (second agent)"), via=True),
    _t("send_back", "proposed", "in_progress", comment=True, label=_l("Send back")),
    _t("legal_approve", "awaiting_signoff", "approved", roles=LEGAL, via=True,
       label=_l("Legal approves")),
    _t("legal_return", "awaiting_signoff", "in_progress", roles=LEGAL, comment=True, via=True,
       label=_l("Legal returns it")),
    _t("pay", "approved", "paid", label=_l("Record payment"), via=True),
    _t("close", "paid", "closed", label=_l("Close")),
    *(_t("reject", s, "rejected", comment=True, label=_l("Reject")) for s in OPEN_BEFORE_PAYMENT),
    *(_t("withdraw", s, "withdrawn", comment=True, label=_l("Withdraw"))
      for s in OPEN_BEFORE_PAYMENT),
)


def find(source: str, action: str) -> Transition | None:
    return next((t for t in TRANSITIONS if t.source == source and t.action == action), None)


def available(source: str, role: str, *, include_services: bool = False) -> list[Transition]:
    """The moves a user with ``role`` may make from ``source`` (for buttons and checks)."""
    return [t for t in TRANSITIONS if t.source == source and role in t.roles
            and (include_services or not t.via_service)]
