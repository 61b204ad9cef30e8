"""Finding a customer across events by name, e-mail or external ref (to open a case for
them from the cases list)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from portal.customers.models import Customer
from portal.extensions import db

MIN_QUERY = 2
LIMIT = 25


def find_customers(q: str) -> list[Customer]:
    """Customers (not erased) whose name, e-mail or external ref contains ``q``, newest event
    first; at most 25. A query shorter than two characters finds nothing."""
    q = q.strip()[:100]
    if len(q) < MIN_QUERY:
        return []
    stmt = (select(Customer).options(joinedload(Customer.event))
            .where(Customer.erased_at.is_(None),
                   or_(Customer.name.icontains(q, autoescape=True),
                       Customer.email.icontains(q, autoescape=True),
                       Customer.external_ref.icontains(q, autoescape=True)))
            .order_by(Customer.event_id.desc(), Customer.name, Customer.id).limit(LIMIT))
    return list(db.session.scalars(stmt))
