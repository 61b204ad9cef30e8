"""A version is published once: a double click, several tabs or the scheduler racing a manual
publish give one publication, one audit entry and one Atom entry. Real threads, real requests,
each with its own database connection, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.extensions import db
from portal.models import utcnow
from portal.notices import services as notices
from portal.notices import tasks
from portal.notices.models import Notice, Publication
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from tests.conftest import PASSWORD
from tests.notice_helpers import approve, make_notice

RACERS = 4


def _race(app, actions: list[Callable[[], object]]) -> list[object]:
    """Run the actions at the same moment, each in its own thread and app context."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)

    def run(index: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results[index] = actions[index]()
            except BaseException as exc:  # reported by the assertion below
                results[index] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _signed_in_clients(app, users, count: int) -> list:
    clients = []
    for _ in range(count):
        client = app.test_client()
        assert client.post("/login", data={"email": users[Role.AGENT].email,
                                           "password": PASSWORD}).status_code == 302
        clients.append(client)
    return clients


def _published_once(notice_id: int, client) -> None:
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Publication.id)).where(
        Publication.notice_id == notice_id)) == 1
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "notice.publish", AuditEntry.subject_id == str(notice_id))) == 1
    feed = client.get("/notices/feed.atom").text
    ids = re.findall(r"<entry>\s*<id>([^<]+)</id>", feed)
    assert len(ids) == 1, ids


def test_concurrent_publish_clicks_publish_once(app_factory, users) -> None:
    app = app_factory()
    with app.app_context():
        notice = make_notice(users)
        approve(notice, users)
        notice_id = notice.id
        clients = _signed_in_clients(app, users, RACERS)
        db.session.remove()
    responses = _race(app, [
        (lambda c=c: c.post(f"/staff/notices/{notice_id}/publish")) for c in clients])
    assert all(getattr(r, "status_code", r) == 302 for r in responses), responses
    with app.app_context():
        _published_once(notice_id, app.test_client())
        # The losers were told, not shown a success.
        pages = [clients[i].get(f"/staff/notices/{notice_id}").text for i in range(RACERS)]
        assert sum("already published" in page for page in pages) == RACERS - 1


def test_the_scheduler_racing_manual_publishes_publishes_once(app_factory, users) -> None:
    app = app_factory()
    with app.app_context():
        notice = make_notice(users, planned_publish_at=utcnow() + timedelta(seconds=2))
        approve(notice, users)
        from portal.notices import publishing

        assert publishing.publish(notice, actor=users[Role.AGENT]) is None  # scheduled
        notice_id, due = notice.id, notice.scheduled_at
        clients = _signed_in_clients(app, users, RACERS - 1)
        db.session.remove()
    time.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.2)
    results = _race(app, [tasks.publish_due_job.func] + [
        (lambda c=c: c.post(f"/staff/notices/{notice_id}/publish")) for c in clients])
    assert not [r for r in results if isinstance(r, BaseException)], results
    with app.app_context():
        _published_once(notice_id, app.test_client())
        assert db.session.get(Notice, notice_id).scheduled_at is None


def test_the_database_refuses_a_second_publication_of_a_version(app, users) -> None:
    notice = make_notice(users)
    approve(notice, users)
    from portal.notices import publishing

    publication = publishing.publish(notice, actor=users[Role.AGENT])
    with pytest.raises(IntegrityError):
        db.session.execute(insert(Publication).values(
            notice_id=notice.id, version_id=publication.version_id,
            published_at=utcnow(), emergency=False))
        db.session.flush()
    db.session.rollback()


# --- publishing on approval ------------------------------------------------------------------


def _approve(notice: Notice, users) -> SignoffRequest:
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    return signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])


def _audit_actions(notice: Notice) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.subject_type == "notice", AuditEntry.subject_id == str(notice.id))
        .order_by(AuditEntry.id)))


def test_approval_publishes_a_notice_planned_on_approval(client, users) -> None:
    notice = make_notice(users, publish_on_approval=True)
    decided = _approve(notice, users)
    db.session.commit()
    db.session.refresh(notice)
    assert notice.status == "published"
    assert notice.published_version_id == notice.latest_version.id
    [publication] = notice.publications
    assert publication.signoff_id == decided.id  # the grant it was published under
    assert _audit_actions(notice)[-1] == "notice.publish"
    assert decided.outcome == f"Notice {notice.ref} approved and published."
    assert client.get(f"/notices/{notice.slug}").status_code == 200  # public at once


def test_approval_of_a_notice_published_by_hand_only_approves(users) -> None:
    notice = make_notice(users)  # the default plan: someone publishes it once approved
    decided = _approve(notice, users)
    assert notice.status == "approved" and notice.published_version_id is None
    assert decided.outcome is None
    assert "notice.publish" not in _audit_actions(notice)


def test_a_planned_time_wins_over_on_approval(users) -> None:
    notice = make_notice(users, publish_on_approval=True,
                         planned_publish_at=utcnow() + timedelta(days=1))
    assert notice.publish_on_approval is False
    _approve(notice, users)
    assert notice.published_version_id is None


@pytest.mark.parametrize(("change", "refusal"), [
    ({"status": "withdrawn"}, "withdrawn"),        # withdrawn while legal was reading
    ({"audience": "direct"}, "not_covered"),       # the approved plan no longer matches
])
def test_approval_stands_when_publishing_on_approval_is_refused(
        client, auth, users, change, refusal) -> None:
    notice = make_notice(users, publish_on_approval=True)
    notices.request_signoff(notice, actor=users[Role.AGENT])
    # A change that reached the row without voiding the request (as a concurrent one would).
    db.session.execute(update(Notice).where(Notice.id == notice.id).values(**change))
    db.session.expire(notice)
    request = db.session.scalar(select(SignoffRequest))
    decided = signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    db.session.commit()
    assert decided.status == "approved"  # the approval stands
    db.session.refresh(notice)
    assert notice.published_version_id is None and notice.publications == []
    assert notice.publish_refusal == refusal
    assert _audit_actions(notice)[-1] == "notice.publish_refused"
    assert decided.outcome.startswith("Approved, but not published")
    auth.login(Role.AGENT)
    page = client.get(f"/staff/notices/{notice.id}").text
    assert 'id="publish-refusal"' in page and "Approved, but not published" in page
