"""The case status flow, in one table that the services, the buttons and the tests read.

Moves into ``awaiting_signoff``, out of it, and into ``paid`` are made by the services that
own them (a proposal above the threshold, legal's decision, a payment), never by a bare
status change; the table records who may trigger each and whether a comment is required.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from portal.accounts import Role, User
from portal.cases.models import EDITABLE_STATUSES, OPEN_STATUSES, Case, CaseStatus

AGENTS = frozenset({Role.AGENT, Role.ADMIN})
LEGAL = frozenset({Role.LEGAL})
# Who may record a case's payment: an agent by hand, finance from the bank's result file.
PAYERS = AGENTS | {Role.FINANCE}


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


S = CaseStatus
OPEN_BEFORE_PAYMENT = tuple(s for s in OPEN_STATUSES if s != S.PAID)

TRANSITIONS: tuple[Transition, ...] = (
    _t("start", S.NEW, S.IN_PROGRESS, label=_l("Start working")),
    _t("propose", S.IN_PROGRESS, S.PROPOSED, label=_l("Propose"), via=True),
    _t("propose_signoff", S.IN_PROGRESS, S.AWAITING_SIGNOFF, label=_l("Propose"), via=True),
    _t("approve", S.PROPOSED, S.APPROVED, label=_l("Approve (second agent)"), via=True),
    _t("send_back", S.PROPOSED, S.IN_PROGRESS, comment=True, label=_l("Send back")),
    _t("legal_approve", S.AWAITING_SIGNOFF, S.APPROVED, roles=LEGAL, via=True,
       label=_l("Legal approves")),
    _t("legal_return", S.AWAITING_SIGNOFF, S.IN_PROGRESS, roles=LEGAL, comment=True, via=True,
       label=_l("Legal returns it")),
    _t("pay", S.APPROVED, S.PAID, label=_l("Record payment"), via=True),
    _t("close", S.PAID, S.CLOSED, label=_l("Close")),
    *(_t("reject", s, S.REJECTED, comment=True, label=_l("Reject")) for s in OPEN_BEFORE_PAYMENT),
    *(_t("withdraw", s, S.WITHDRAWN, comment=True, label=_l("Withdraw"))
      for s in OPEN_BEFORE_PAYMENT),
)
# The proposal and the second agent's approval are buttons of the flow; payment and legal's
# decision have their own forms.
OWN_FORMS = frozenset({"propose_signoff", "pay", "legal_approve", "legal_return"})


def find(source: str, action: str) -> Transition | None:
    return next((t for t in TRANSITIONS if t.source == source and t.action == action), None)


def available(source: str, role: str, *, include_services: bool = False) -> list[Transition]:
    """The moves a user with ``role`` may make from ``source`` (for buttons and checks)."""
    return [t for t in TRANSITIONS if t.source == source and role in t.roles
            and (include_services or not t.via_service)]


def own_proposal(case: Case, user: User) -> bool:
    """Four eyes: the agent who proposed an amount never approves it."""
    return user.id == case.proposed_by_id


def steps(case: Case, user: User) -> list[Transition]:
    """The buttons of the flow ``user`` may press on ``case`` now (for ``cases.step``)."""
    return [t for t in available(case.status, user.role, include_services=True)
            if t.action not in OWN_FORMS
            and not (t.action == "approve" and own_proposal(case, user))]


def waits_for_other_agent(case: Case, user: User) -> bool:
    """``user`` proposed this amount: another agent must approve it."""
    return case.status == S.PROPOSED and user.role in AGENTS and own_proposal(case, user)


def may_step(user: User, case: Case) -> bool:
    return bool(steps(case, user))


def editable(_user: User, case: Case) -> bool:
    return case.status in EDITABLE_STATUSES


def payable(_user: User, case: Case) -> bool:
    return case.status == S.APPROVED
