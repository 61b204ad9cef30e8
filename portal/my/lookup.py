""""Check my case": an e-mail address and an order ref, case ref or customer ref get a
one-time link to the customer's page, sent to that address.

The answer never tells whether anything was found: the view shows one page for every input
and takes the same time (``MY_CHECK_SECONDS``) whatever happened. On a match the request
writes the one-time link's row and queues its e-mail job (``portal.my.tasks``); otherwise
it writes nothing.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, or_, select

from portal import jobs
from portal.cases.models import Case, order_ref_key
from portal.customers import links
from portal.customers.models import Customer
from portal.events.models import Event
from portal.extensions import db
from portal.my import tasks

MAX_REF = 64


def address_key(email: str) -> str:
    """What the per-address rate limit counts by: a digest of the address as typed, folded."""
    return "my-check-address:" + hashlib.sha256(
        (email or "").strip().casefold().encode()).hexdigest()


def find_customer(email: str, ref: str, event_id: int | None) -> Customer | None:
    """The customer (not erased, of an event that offers "Check my case") with this e-mail
    address who has this order or case ref on one of their cases, or this customer ref."""
    email, ref = (email or "").strip().lower(), (ref or "").strip()
    if not email or not ref or len(email) > 254 or len(ref) > MAX_REF:
        return None
    on_case = select(Case.customer_id).where(
        or_(order_ref_key(Case.order_ref) == ref.lower(), Case.ref == ref.upper()))
    stmt = (select(Customer).join(Event, Event.id == Customer.event_id)
            .where(Customer.email == email, Customer.erased_at.is_(None),
                   Event.self_service.is_(True),
                   or_(func.lower(Customer.external_ref) == ref.lower(),
                       Customer.id.in_(on_case)))
            .order_by(Customer.id.desc()).limit(1))
    if event_id is not None:
        stmt = stmt.where(Customer.event_id == event_id)
    return db.session.scalar(stmt)


def request_link(email: str, ref: str, event_id: int | None) -> None:
    """On a match, a one-time link (flushed) and its e-mail job, queued after the commit;
    otherwise nothing. Says nothing either way."""
    customer = find_customer(email, ref, event_id)
    if customer is None:
        return
    link = links.request_one_time(customer)
    jobs.enqueue_after_commit(tasks.queue_link_mail, link.id)
