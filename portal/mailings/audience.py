"""Who a mailing is for: the audience of an event's customers, who in it gets no message and
why, and the summary the draft page shows.

A domain above mailings may offer an audience **kind** of its own (a remediation programme's
members): it registers an :class:`AudienceKind` under a name in ``portal.wiring``; a mailing
whose audience says ``{"kind": <name>, "args": {...}}`` is then for the customers the kind
selects (the tag and language filters still apply), and its greeting gets the kind's personal
values (``placeholders.FIELDS``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select, true

from portal.cases.models import Case
from portal.customers.models import Customer
from portal.extensions import db

NO_CASE = "none"
SAMPLE_SIZE = 10
# How many customers a preview search shows.
SEARCH_LIMIT = 10


@dataclass(frozen=True)
class AudienceKind:
    """An audience offered by a higher domain. ``customers(event_id, args)`` is a condition on
    ``Customer`` (who is in it); ``personal(customers, args)`` the extra greeting values per
    customer id (``placeholders.FIELDS``); ``label(args)`` what staff read."""

    customers: Callable[[int, dict[str, Any]], Any]
    personal: Callable[[Iterable[Customer], dict[str, Any]], dict[int, dict[str, str]]]
    label: Callable[[dict[str, Any]], str]


_KINDS: dict[str, AudienceKind] = {}


def register_kind(name: str, kind: AudienceKind) -> None:
    """Offer an audience kind (``portal.wiring``, once per process)."""
    _KINDS[name] = kind


@dataclass(frozen=True)
class Audience:
    """Which of an event's customers a mailing is for; an empty list means "any". ``kind``
    (with its ``args``) narrows it to the customers a registered :class:`AudienceKind`
    selects."""

    tags: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    case_statuses: tuple[str, ...] = ()
    kind: str = ""
    args: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Audience:
        data = data or {}
        return cls(*(tuple(sorted(set(data.get(k) or ()))) for k in
                     ("tags", "locales", "case_statuses")),
                   kind=str(data.get("kind") or ""), args=dict(data.get("args") or {}))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"tags": list(self.tags), "locales": list(self.locales),
                                "case_statuses": list(self.case_statuses)}
        if self.kind:
            data.update(kind=self.kind, args=dict(self.args))
        return data

    @property
    def provider(self) -> AudienceKind | None:
        return _KINDS.get(self.kind) if self.kind else None

    def condition(self, event_id: int) -> Any:
        """The kind's condition on ``Customer`` (none for a plain audience; an unknown kind
        selects nobody rather than everybody)."""
        if not self.kind:
            return true()
        provider = self.provider
        return provider.customers(event_id, self.args) if provider else Customer.id.is_(None)

    def personal(self, customers: Iterable[Customer]) -> dict[int, dict[str, str]]:
        provider = self.provider
        return provider.personal(customers, self.args) if provider else {}

    @property
    def label(self) -> str:
        provider = self.provider
        return provider.label(self.args) if provider else ""

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
    stmt = (select(Customer).where(Customer.event_id == event_id, audience.condition(event_id))
            .order_by(Customer.id).execution_options(yield_per=1000))
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
        Customer.event_id == event_id, audience.condition(event_id),
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
