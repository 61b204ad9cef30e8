"""Who a mailing is for: the audience of an event's customers, who in it gets no message and
why, and the summary the draft page shows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select

from portal.cases.models import Case
from portal.customers.models import Customer
from portal.extensions import db

NO_CASE = "none"
SAMPLE_SIZE = 10
# How many customers a preview search shows.
SEARCH_LIMIT = 10


@dataclass(frozen=True)
class Audience:
    """Which of an event's customers a mailing is for; an empty list means "any"."""

    tags: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    case_statuses: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Audience:
        data = data or {}
        return cls(*(tuple(sorted(set(data.get(k) or ()))) for k in
                     ("tags", "locales", "case_statuses")))

    def to_dict(self) -> dict[str, list[str]]:
        return {"tags": list(self.tags), "locales": list(self.locales),
                "case_statuses": list(self.case_statuses)}

    def matches(self, customer: Customer, case_statuses: set[str]) -> bool:
        if self.tags and not set(self.tags) & set(customer.tags or ()):
            return False
        if self.locales and customer.locale not in self.locales:
            return False
        if self.case_statuses:
            wanted = set(self.case_statuses)
            if not (wanted & case_statuses or (NO_CASE in wanted and not case_statuses)):
                return False
        return True


def event_tags(event_id: int) -> list[str]:
    tags: set[str] = set()
    for row in db.session.scalars(select(Customer.tags).where(Customer.event_id == event_id)):
        tags.update(row or ())
    return sorted(tags)


def _case_statuses(event_id: int) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for customer_id, status in db.session.execute(
            select(Case.customer_id, Case.status).where(Case.event_id == event_id)):
        found.setdefault(customer_id, set()).add(status)
    return found


def audience_members(event_id: int, audience: Audience) -> Iterator[Customer]:
    """The event's customers in the audience, streamed in id order."""
    statuses = _case_statuses(event_id) if audience.case_statuses else {}
    stmt = (select(Customer).where(Customer.event_id == event_id).order_by(Customer.id)
            .execution_options(yield_per=1000))
    for customer in db.session.scalars(stmt):
        if audience.matches(customer, statuses.get(customer.id, set())):
            yield customer


def search_members(event_id: int, audience: Audience, query: str,
                   limit: int = SEARCH_LIMIT) -> tuple[list[Customer], bool]:
    """Up to ``limit`` customers of the audience whose name, e-mail or reference contains
    ``query`` (any case), in id order, and whether more match."""
    query = query.strip()
    if not query:
        return [], False
    statuses = _case_statuses(event_id) if audience.case_statuses else {}
    stmt = (select(Customer).where(
        Customer.event_id == event_id,
        or_(*(column.icontains(query, autoescape=True) for column in
              (Customer.name, Customer.email, Customer.external_ref))))
        .order_by(Customer.id).execution_options(yield_per=200))
    found: list[Customer] = []
    for customer in db.session.scalars(stmt):
        if audience.matches(customer, statuses.get(customer.id, set())):
            if len(found) == limit:
                return found, True
            found.append(customer)
    return found, False


def skip_reason(customer: Customer, mandatory: bool) -> str | None:
    """Why a customer in the audience gets no message, or None."""
    if not customer.email:
        return "no e-mail address"
    if customer.unsubscribed_at is not None and not mandatory:
        return "unsubscribed"
    return None


@dataclass
class AudienceSummary:
    matching: int = 0
    to_send: int = 0
    unsubscribed: int = 0
    no_email: int = 0
    sample: list[Customer] = field(default_factory=list)


def summarise(event_id: int, audience: Audience, mandatory: bool) -> AudienceSummary:
    summary = AudienceSummary()
    for customer in audience_members(event_id, audience):
        summary.matching += 1
        reason = skip_reason(customer, mandatory)
        if reason is None:
            summary.to_send += 1
            if len(summary.sample) < SAMPLE_SIZE:
                summary.sample.append(customer)
        elif reason == "unsubscribed":
            summary.unsubscribed += 1
        else:
            summary.no_email += 1
    return summary
