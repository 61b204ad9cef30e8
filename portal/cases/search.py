"""The searchable case list: its filter, search and sorting, and its CSV export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, union

from portal import exports
from portal.cases import rules
from portal.cases.models import Case
from portal.customers.models import Customer
from portal.extensions import db
from portal.models import utcnow

SORTS = {
    "newest": (Case.created_at.desc(), Case.id.desc()),
    "oldest": (Case.created_at.asc(), Case.id.asc()),
    "due": (Case.due_at.asc(), Case.id.asc()),
    "amount": (Case.amount.desc(), Case.id.desc()),
    "ref": (Case.ref.asc(),),
}


SEARCH_ID_LIMIT = 5000  # above this the subquery runs twice instead of a long IN list


@dataclass
class CaseFilter:
    q: str = ""
    status: str = ""
    kind: str = ""
    event_id: int | None = None
    assignee_id: int | None = None
    overdue: bool = False
    sort: str = "newest"

    def statement(self) -> Any:
        """The filtered, sorted query; the search covers ref, order ref and the customer's
        name, e-mail and company."""
        stmt = select(Case)
        if self.q:
            # A union of ids instead of one OR across tables, so each part uses its own index
            # (ref, order_ref, customer_id); LIKE wildcards typed by the user are escaped.
            q = self.q.strip()
            low = q.lower()
            matching_customers = select(Customer.id).where(or_(
                func.lower(Customer.name).contains(low, autoescape=True),
                func.lower(Customer.email).contains(low, autoescape=True),
                func.lower(Customer.company).contains(low, autoescape=True)))
            matches = union(
                select(Case.id).where(Case.ref == q.upper()),
                select(Case.id).where(Case.order_ref.startswith(q, autoescape=True)),
                select(Case.id).where(Case.customer_id.in_(matching_customers)))
            # Run the search once: the page and its COUNT then look ids up by primary key.
            ids = db.session.scalars(matches.limit(SEARCH_ID_LIMIT + 1)).all()
            stmt = stmt.where(Case.id.in_(ids if len(ids) <= SEARCH_ID_LIMIT else matches))
        if self.status:
            stmt = stmt.where(Case.status == self.status)
        if self.kind:
            stmt = stmt.where(Case.kind == self.kind)
        if self.event_id:
            stmt = stmt.where(Case.event_id == self.event_id)
        if self.assignee_id:
            stmt = stmt.where(Case.assignee_id == self.assignee_id)
        if self.overdue:
            stmt = stmt.where(Case.status.in_(rules.OPEN_BEFORE_PAYMENT),
                              Case.due_at < utcnow())
        return stmt.order_by(*SORTS.get(self.sort, SORTS["newest"]))


CSV_COLUMNS = ["ref", "status", "kind", "event", "customer_ref", "customer", "company", "email",
               "order_ref", "amount", "currency", "approved_amount", "reason", "assignee",
               "due_at", "created_at", "payout_ref"]


def export_csv(flt: CaseFilter, batch: int = 1000) -> Iterator[str]:
    """Stream the filtered cases as CSV."""
    from sqlalchemy.orm import joinedload

    stmt = flt.statement().options(joinedload(Case.customer), joinedload(Case.event),
                                   joinedload(Case.assignee), joinedload(Case.payment))
    rows = ([c.ref, c.status, c.kind, c.event.title, c.customer.external_ref, c.customer.name,
             c.customer.company, c.customer.email, c.order_ref, c.amount, c.currency,
             c.approved_amount, c.reason, c.assignee.email if c.assignee else "", c.due_at,
             c.created_at, c.payment.payout_ref if c.payment else ""]
            for c in db.session.scalars(stmt.execution_options(yield_per=batch)))
    yield from exports.stream(CSV_COLUMNS, rows)
