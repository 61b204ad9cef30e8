"""Each role's own work at the top of the dashboard, and its count in the navigation: the
right items, and never someone else's."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import g
from sqlalchemy import update

from portal.accounts import Role
from portal.cases import services as cases
from portal.cases.models import Case, ReplyStatus
from portal.customers.models import ImportBatch, ImportStatus
from portal.events.models import Event
from portal.extensions import db
from portal.main import my_work
from portal.models import utcnow
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from tests.case_helpers import make_case, make_customer, second_agent
from tests.notice_helpers import make_event


def _due(case: Case, when) -> None:
    db.session.execute(update(Case).where(Case.id == case.id).values(due_at=when))
    db.session.expire(case)


def _section(page: str, key: str) -> str:
    start = page.index(f'id="my-work-{key}"')
    end = page.find('class="mywork-section"', start)
    # The section's text: a typed value inside a sentence is a span of its own.
    return re.sub(r"<[^>]*>", "", page[start:end if end > 0 else len(page)])


def _nav_count(page: str) -> int | None:
    found = re.search(r'id="my-work-count">(\d+)', page)
    return int(found.group(1)) if found else None


def _batch(event: Event, user, status: str, name: str) -> ImportBatch:
    batch = ImportBatch(event_id=event.id, uploaded_by_id=user.id, filename=name, sha256="0" * 64,
                        size=1, status=status, valid_rows=7)
    db.session.add(batch)
    db.session.flush()
    return batch


def test_an_agent_sees_their_due_cases_replies_and_imports_only(app, users, auth,
                                                                 client) -> None:
    agent, other = users[Role.AGENT], second_agent()
    event = make_event()
    customer = make_customer(users, event=event)
    overdue = make_case(users, customer=customer, order_ref="O-LATE")
    today = make_case(users, customer=customer, order_ref="O-TODAY")
    later = make_case(users, customer=customer, order_ref="O-NEXT-WEEK")
    theirs = make_case(users, customer=customer, order_ref="O-THEIRS")
    _due(overdue, utcnow() - timedelta(hours=5))
    _due(today, min(utcnow() + timedelta(minutes=1),
                    my_work.end_of_today() - timedelta(seconds=1)))
    _due(later, utcnow() + timedelta(days=7))
    _due(theirs, utcnow() - timedelta(hours=5))
    cases.bulk_assign([theirs.id], other.id, actor=users[Role.ADMIN])
    failed = cases.add_reply(overdue, "Hello", actor=agent)
    failed.mail_status = ReplyStatus.FAILED
    cases.add_reply(theirs, "Hello", actor=other)  # queued, but on someone else's case
    sent = cases.add_reply(later, "Hello", actor=agent)
    sent.mail_status = ReplyStatus.SENT
    _batch(event, agent, ImportStatus.VALIDATED, "mine.csv")
    _batch(event, other, ImportStatus.VALIDATED, "theirs.csv")
    _batch(event, agent, ImportStatus.IMPORTED, "done.csv")
    auth.login(Role.AGENT)
    page = client.get("/dashboard").get_data(as_text=True)
    due = _section(page, "cases")
    assert overdue.ref in due and today.ref in due
    assert later.ref not in due and theirs.ref not in due
    assert due.index(overdue.ref) < due.index(today.ref)  # the oldest due first
    replies = _section(page, "replies")
    assert overdue.ref in replies and theirs.ref not in replies and later.ref not in replies
    imports = _section(page, "imports")
    assert "mine.csv" in imports and "theirs.csv" not in imports and "done.csv" not in imports
    assert _nav_count(page) == 4  # two cases, one reply, one import
    assert _nav_count(client.get("/cases/").get_data(as_text=True)) == 4


def test_legal_sees_the_queue_oldest_first_with_its_age(app, users, auth, client) -> None:
    customer = make_customer(users)
    newer = make_case(users, amount="6000.00", customer=customer, order_ref="O-NEW")
    older = make_case(users, amount="7000.00", customer=customer, order_ref="O-OLD")
    for case, hours in ((newer, 2), (older, 30)):
        cases.change_status(case, "start", actor=users[Role.AGENT])
        cases.propose(case, actor=users[Role.AGENT])
        db.session.execute(update(SignoffRequest).where(SignoffRequest.id == case.signoff_id)
                           .values(requested_at=utcnow() - timedelta(hours=hours)))
    auth.login(Role.LEGAL)
    page = client.get("/dashboard", headers={"Accept-Language": "en"}).get_data(as_text=True)
    queue = _section(page, "signoffs")
    assert queue.index(older.ref) < queue.index(newer.ref)
    assert "waiting 1 day" in queue and "waiting 2 hours" in queue
    assert _nav_count(page) == 2
    assert 'id="my-work-cases"' not in page  # an agent's lists are not legal's


def test_an_admin_sees_missed_targets_and_overdue_reviews(app, users, auth, client) -> None:
    from tests.notice_helpers import make_notice

    late = make_event(title="Old outage")
    db.session.execute(update(Event).where(Event.id == late.id)
                       .values(created_at=utcnow() - timedelta(days=2)))
    notice = make_notice(users, late)
    from portal.notices import publishing

    publishing.emergency_publish(notice, reason="Customers must know now",
                                 actor=users[Role.ADMIN])
    db.session.execute(update(SignoffRequest).where(SignoffRequest.retroactive.is_(True))
                       .values(requested_at=utcnow() - timedelta(hours=30)))
    [review] = signoffs.overdue_retroactive()
    auth.login(Role.ADMIN)
    page = client.get("/dashboard", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Old outage" in _section(page, "missed_targets")
    assert review.title in _section(page, "overdue_reviews")
    assert _nav_count(page) == len(my_work._admin_sections()[0].items) + 1
    assert page.count('id="targets-heading"') == 0  # not listed twice on the dashboard


def test_the_count_is_computed_once_per_request_and_only_for_staff(app, users, auth,
                                                                    client) -> None:
    assert _nav_count(client.get("/login").get_data(as_text=True)) is None
    with app.test_request_context():
        from flask_login import login_user

        login_user(users[Role.AGENT])
        assert my_work.nav_count() == 0
        g.my_work_count = 41
        assert my_work.nav_count() == 41  # cached: not asked again
