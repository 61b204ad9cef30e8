"""Builders shared by the payout tests: approved cases, customers' bank details, a second
finance user (the checker)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from portal.accounts import Role, User
from portal.auth import services as auth
from portal.cases.models import Case, CaseStatus
from portal.customers import payout
from portal.customers.models import Customer
from portal.events.models import Event
from portal.extensions import db
from tests.case_helpers import make_case, make_customer
from tests.notice_helpers import make_event

ACCOUNT = "6222021234567890128"
HOLDER = "王芳"
BANK = "中国工商银行北京分行"


def approved_case(users: dict[Role, User], amount: str = "100.00", currency: str = "CNY",
                  *, event: Event | None = None, ref: str = "K-1", bank: str | None = ACCOUNT,
                  customer: Customer | None = None, order_ref: str = "O-1") -> Case:
    """An approved case of a new customer (who confirmed ``bank`` as their account, or the
    original payment method when ``bank`` is None)."""
    customer = customer or make_customer(users, ref=ref, event=event or make_event(),
                                         email=f"{ref.lower()}@example.com")
    case = make_case(users, amount=amount, currency=currency, customer=customer,
                     order_ref=order_ref)
    case.status, case.approved_amount = CaseStatus.APPROVED, Decimal(amount)
    if bank is not None:
        confirm_bank(customer, bank)
    elif payout.details_for(customer) is None:
        payout.confirm(customer, {"method": payout.ORIGINAL}, None)
    db.session.flush()
    return case


def confirm_bank(customer: Customer, account: str = ACCOUNT, holder: str = HOLDER) -> None:
    payout.confirm(customer, {"method": payout.BANK, "holder": holder, "bank": BANK,
                              "account": account}, None)


def second_finance() -> User:
    """Another finance user: the checker of what ``users[Role.FINANCE]`` prepares."""
    existing = db.session.scalar(select(User).where(User.email == "finance2@example.com"))
    if existing:
        return existing
    user, _ = auth.create_user("finance2@example.com", "Finance Two", Role.FINANCE,
                               "correct-horse-battery", must_change_password=False)
    user.notify_by_email = False
    db.session.flush()
    return user
