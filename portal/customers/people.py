"""One customer across events, and everything that happened to them, newest first.

A person affected by several events has one customer row per event. Rows with the same
e-mail address (stored lower-cased) or the same phone digits are taken as the same person,
unless erased. Their timeline gathers what this domain knows (added by hand or by an import,
updated by an import, unsubscribed) and what the domains above it add through the sources
``portal.wiring`` registers (cases, replies and payments; notices mailed), as the sign-off
handlers are registered: this domain never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import func, or_, select

from portal.audit.models import AuditEntry, customer_actor
from portal.customers.models import Customer
from portal.extensions import db
from portal.i18n import N_


@dataclass
class Entry:
    """One line of a customer's timeline; the template links it with
    ``url_for(endpoint, **args)`` when it names a page."""

    at: datetime
    kind: str
    text: str | Markup  # a Markup marks what people typed (``Message.html``)
    customer_id: int
    status: str = ""
    endpoint: str | None = None
    args: dict[str, Any] | None = None


Source = Callable[[list[int]], list[Entry]]
_SOURCES: list[Source] = []


def add_sources(*sources: Source) -> None:
    """Have the timeline ask these too (done by ``portal.wiring``, once per process)."""
    for source in sources:
        if source not in _SOURCES:
            _SOURCES.append(source)


def phone_digits(column: Any) -> Any:
    """The digits of a stored phone number, as SQL (spaces, dashes, brackets, + removed)."""
    for char in (" ", "-", "(", ")", "+"):
        column = func.replace(column, char, "")
    return column


def same_person(customer: Customer) -> list[Customer]:
    """This customer and the rows of other events with their e-mail address or phone."""
    if customer.erased:
        return [customer]
    keys = []
    if customer.email:
        keys.append(Customer.email == customer.email)
    digits = "".join(ch for ch in customer.phone or "" if ch.isdigit())
    if digits:
        keys.append(phone_digits(Customer.phone) == digits)
    if not keys:
        return [customer]
    others = db.session.scalars(select(Customer).where(
        or_(*keys), Customer.erased_at.is_(None), Customer.id != customer.id)
        .order_by(Customer.event_id, Customer.id).limit(20))
    return [customer, *others]


def _own_entries(customers: list[Customer]) -> list[Entry]:
    found = []
    for customer in customers:
        created = customer.created_by_import
        if created is not None:
            found.append(Entry(customer.created_at, "import", N_(
                "Added by the import of %(file)s", file=created.filename).html(), customer.id,
                endpoint="customers.import_status", args={"batch_id": created.id}))
        else:
            found.append(Entry(customer.created_at, "created", _("Added by hand"), customer.id))
        last = customer.last_import
        if last is not None and last.id != customer.created_by_import_id:
            found.append(Entry(last.finished_at or customer.updated_at, "import", N_(
                "Updated by the import of %(file)s", file=last.filename).html(), customer.id,
                endpoint="customers.import_status", args={"batch_id": last.id}))
        if customer.unsubscribed_at is not None:
            found.append(Entry(customer.unsubscribed_at, "unsubscribed",
                               _("Unsubscribed from e-mails"), customer.id))
    return found


def _customer_actions(ids: list[int]) -> list[Entry]:
    """What the customers did themselves on their page (``/my``): the audit entries they are
    the actor of (``customer:<id>``), whichever domain wrote them."""
    labels = {customer_actor(i): i for i in ids}
    rows = db.session.scalars(select(AuditEntry).where(AuditEntry.actor_label.in_(labels))
                              .order_by(AuditEntry.id.desc()).limit(200))
    return [Entry(row.created_at, "customer_action", row.html, labels[row.actor_label],
                  _("by the customer")) for row in rows]


def timeline(customers: list[Customer]) -> list[Entry]:
    """Everything about these customer rows, newest first."""
    ids = [c.id for c in customers]
    entries = _own_entries(customers) + _customer_actions(ids)
    for source in _SOURCES:
        entries.extend(source(ids))
    return sorted(entries, key=lambda e: (e.at, e.kind), reverse=True)
