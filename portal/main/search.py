"""The header's search: one box for a phone number, an e-mail address, an order ref, a case
ref or a name. An exact case ref opens the case, an order ref of one case opens that case, and
a single customer opens their page; otherwise a list.

E-mail addresses are stored lower-cased by the customer rules, so an address is compared
exactly (the column is indexed); a phone number is compared by its digits, whatever spaces,
dashes, brackets or + either side was written with. What was searched for is not logged or
audited (it names a person)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select

from portal.cases.models import Case, order_ref_key
from portal.customers.models import Customer
from portal.customers.people import phone_digits
from portal.extensions import db

LIMIT = 50
CASE_REF = re.compile(r"^C-\d{4}-\d{3,}$", re.IGNORECASE)
PHONE_LIKE = re.compile(r"^\+?[\d\s()\-]{5,30}$")
EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass
class Found:
    """Matches of one query; ``target`` (endpoint, args) when one is exact."""

    customers: list[Customer] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    target: tuple[str, dict[str, Any]] | None = None


def find(query: str) -> Found:
    query = query.strip()[:100]
    if not query:
        return Found()
    if CASE_REF.match(query):
        case = db.session.scalar(select(Case).where(Case.ref == query.upper()))
        if case is not None:
            return Found(cases=[case], target=("cases.detail", {"case_id": case.id}))
    cases = list(db.session.scalars(select(Case).where(
        order_ref_key(Case.order_ref) == order_ref_key(query)).order_by(Case.id.desc())
        .limit(LIMIT)))
    if len(cases) == 1:
        return Found(cases=cases, target=("cases.detail", {"case_id": cases[0].id}))
    customers = _customers(query)
    if len(customers) == 1 and not cases:
        return Found(customers=customers,
                     target=("customers.detail", {"customer_id": customers[0].id}))
    return Found(customers=customers, cases=cases)


def _customers(query: str) -> list[Customer]:
    if EMAIL_LIKE.match(query):
        where = Customer.email == query.lower()
    elif PHONE_LIKE.match(query):
        digits = re.sub(r"\D", "", query)
        where = phone_digits(Customer.phone) == digits
    else:
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = or_(Customer.external_ref == query, Customer.name.ilike(like, escape="\\"))
    return list(db.session.scalars(select(Customer).where(where, Customer.erased_at.is_(None))
                                   .order_by(Customer.name, Customer.id).limit(LIMIT)))
