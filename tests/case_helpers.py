"""Builders shared by the case tests."""

from __future__ import annotations

from portal.accounts import Role, User
from portal.auth import services as auth
from portal.cases import services as cases
from portal.cases.models import Case
from portal.customers import services as customers
from portal.customers.models import Customer
from tests.notice_helpers import make_event


def make_customer(users: dict[Role, User], ref: str = "K-1", event=None,
                  email: str = "kunde@example.com") -> Customer:
    return customers.create_customer(event or make_event(), {
        "external_ref": ref, "name": "王芳", "email": email, "locale": "zh_CN"},
        actor=users[Role.AGENT])


def make_case(users: dict[Role, User], amount: str = "100.00", currency: str = "CNY",
              customer: Customer | None = None, order_ref: str = "O-1",
              kind: str = "refund") -> Case:
    return cases.open_case(customer or make_customer(users), cases.CaseInput(
        kind, order_ref, amount, currency, "service_outage", "", users[Role.AGENT].id),
        actor=users[Role.AGENT])


def second_agent() -> User:
    from sqlalchemy import select

    from portal.extensions import db

    existing = db.session.scalar(select(User).where(User.email == "agent2@example.com"))
    if existing:
        return existing
    user, _ = auth.create_user("agent2@example.com", "Agent Two", Role.AGENT, "x" * 12,
                               must_change_password=False)
    return user
