"""Demo data of remediation programmes: a draft programme of the demo event, so a new user can
walk preview → sign-off → cases after ``make run``. (Demo entitlements are seeded beside it.)"""

from __future__ import annotations

from datetime import date

from portal.accounts import Role, User
from portal.events.models import Event
from portal.programmes import services as programme_services
from portal.programmes.models import Programme

TERMS_ZH = ("因 CRM 系统故障给您带来不便，我们按您受影响订单金额的 10% 另加年利率 3% 的利息向您"
            "补偿，每位客户最多 500 元。低于 5 元的补偿无需确认，直接支付。")
TERMS_EN = ("For the inconvenience of the CRM outage we compensate you 10% of the affected "
            "orders' amount plus 3% a year interest, at most 500 CNY per customer. Amounts "
            "below 5 CNY are paid without asking.")


def seed_demo_programme(event: Event, users: dict[Role, User]) -> Programme:
    """A draft "Service outage compensation" programme: 10 % of the basis plus 3 % simple
    interest, capped at 500.00, amounts below 5.00 paid without asking."""
    return programme_services.create_programme(event, {
        "name_zh": "服务中断补偿", "name_en": "Service outage compensation",
        "kind": "compensation", "currency": "CNY", "mode": "proactive",
        "calculation_date": date.today().isoformat(),
        "rules": {"amount": {"method": "percentage", "percentage": "10",
                             "interest_rate": "3", "cap": "500"},
                  "eligibility": {"no_open_case": True}},
        "low_value_threshold": "5.00", "low_value_action": "pay", "budget": "50000.00",
        "terms_zh": TERMS_ZH, "terms_en": TERMS_EN,
    }, actor=users[Role.AGENT])
