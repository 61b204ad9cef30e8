"""Builders shared by the offer and payout tests: an event whose customers must accept offers,
with terms approved by legal, and an approved case of it."""

from __future__ import annotations

from portal.accounts import Role, User
from portal.cases import offers
from portal.cases import services as cases
from portal.cases.models import Case
from portal.events.models import Event
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffStatus
from tests.case_helpers import make_case, make_customer, second_agent
from tests.notice_helpers import make_event

TERMS_ZH = "接受本赔付即表示您同意与本事件相关的索赔已全部了结。"
TERMS_EN = "By accepting this payment you agree that your claims about this event are settled."


def event_requiring_acceptance(users: dict[Role, User], approve: bool = True) -> Event:
    event = make_event()
    offers.save_terms(event, required=True, text_zh=TERMS_ZH, text_en=TERMS_EN,
                      actor=users[Role.ADMIN])
    if approve:
        request = offers.request_terms_signoff(event, actor=users[Role.ADMIN])
        signoffs.decide(request.id, SignoffStatus.APPROVED, "", actor=users[Role.LEGAL])
    return event


def approved_case(users: dict[Role, User], event: Event, amount: str = "300.00",
                  order_ref: str = "O-1") -> Case:
    case = make_case(users, amount=amount, order_ref=order_ref,
                     customer=make_customer(users, ref=f"K-{order_ref}", event=event))
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    cases.approve(case, actor=second_agent())
    return case


def answer(case: Case, decision: str = "accepted", locale: str = "zh_CN", reason: str = "",
           ip: str | None = "203.0.113.7"):
    offer = offers.current_offer(case, locale)
    return offers.respond(case, case.customer, {"decision": decision, "offer_hash": offer.hash,
                                                "locale": locale, "reason": reason}, ip)
