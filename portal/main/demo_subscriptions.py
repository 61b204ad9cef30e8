"""Demo data: a confirmed public subscriber of the demo event, so the staff figures, the
management page and (with ``make run``) the next publication's e-mail show the feature."""

from __future__ import annotations

from sqlalchemy import select

from portal.events.models import Event
from portal.extensions import db
from portal.subscriptions import services as subscriptions
from portal.subscriptions.models import Subscription

DEMO_SUBSCRIBER = "chen.jing@example.net"


def seed_subscriber(event: Event) -> str:
    """Subscribe and confirm the demo reader (English, the demo event); returns the line printed
    with the demo accounts (the signed link to manage the subscription)."""
    subscriptions.subscribe(DEMO_SUBSCRIBER, event.id, "en")
    row = db.session.scalar(select(Subscription).where(Subscription.email == DEMO_SUBSCRIBER))
    subscriptions.confirm(row)
    row.mail = None  # confirmed here: no confirmation e-mail waits to go out
    # No address in the line: the printed lines with an "@" are the staff accounts.
    return f"  Subscriber link (陈静, English, the demo event): {subscriptions.manage_url(row)}"
