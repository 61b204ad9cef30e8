"""Demo data of offers customers must accept: a shutdown whose offer terms legal approved,
one approved case waiting for the customer's answer, one accepted, and one customer's
payout details (a bank account, sealed)."""

from __future__ import annotations

from portal.accounts import Role, User
from portal.cases import offers
from portal.cases import services as case_services
from portal.cases.models import Case
from portal.customers import payout
from portal.customers import services as customer_services
from portal.customers.models import Customer
from portal.events import services as event_services
from portal.events.models import Event
from portal.signoffs import services as signoff_services
from portal.signoffs.models import SignoffStatus

TERMS_ZH = ("本补偿为会员业务关停的一次性补偿。接受后，我们将在 5 个工作日内按您确认的方式付款；"
            "您与本次关停相关的会员费退款请求即告了结。")
TERMS_EN = ("This is a one-off compensation for the closure of the membership business. Once "
            "you accept, we pay within 5 working days by the method you confirmed; your "
            "requests for refunds of membership fees for this closure are then settled.")
DEMO_IP = "192.0.2.10"


def seed_offers(users: dict[Role, User]) -> Event:
    agent, legal, admin = users[Role.AGENT], users[Role.LEGAL], users[Role.ADMIN]
    event = event_services.create_event(
        title="会员业务关停 / Membership shutdown", kind="shutdown", severity="sev3",
        cause="business", summary="会员业务将于年底关停，会员费按剩余月份补偿。\n"
                                  "The membership business closes at the end of the year; "
                                  "fees are compensated for the remaining months.",
        actor=admin, titles={"title_zh": "会员业务关停", "title_en": "Membership shutdown"})
    offers.save_terms(event, required=True, text_zh=TERMS_ZH, text_en=TERMS_EN, actor=admin)
    request = offers.request_terms_signoff(event, actor=admin)
    signoff_services.decide(request.id, SignoffStatus.APPROVED, "", actor=legal)
    waiting = _approved(event, ("MEM-20001", "赵敏", "zhao.min@example.com", "zh_CN"),
                        "M-2026-0101", "360.00", agent, admin)
    accepted = _approved(event, ("MEM-20002", "Tom Baker", "tom.baker@example.com", "en"),
                         "M-2026-0102", "480.00", agent, admin)
    offer = offers.current_offer(accepted, accepted.customer.locale)
    offers.respond(accepted, accepted.customer, {"decision": "accepted", "offer_hash": offer.hash,
                                                 "locale": offer.locale}, DEMO_IP)
    payout.confirm(accepted.customer, {"method": "bank", "holder": "Tom Baker",
                                       "bank": "Deutsche Bank",
                                       "account": "DE89 3704 0044 0532 0130 00"}, DEMO_IP)
    payout.confirm(waiting.customer, {"method": "original"}, DEMO_IP)
    return event


def _approved(event: Event, person: tuple[str, str, str, str], order_ref: str, amount: str,
              agent: User, approver: User) -> Case:
    ref, name, email, locale = person
    customer: Customer = customer_services.create_customer(
        event, {"external_ref": ref, "name": name, "email": email, "locale": locale},
        actor=agent)
    case = case_services.open_case(customer, case_services.CaseInput(
        "compensation", order_ref, amount, "CNY", "business_shutdown", "", agent.id),
        actor=agent)
    case_services.change_status(case, "start", actor=agent)
    case_services.propose(case, actor=agent)
    case_services.approve(case, actor=approver)
    return case
