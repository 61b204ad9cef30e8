"""Opt-in on the customer's page: one confirmed acceptance by the deadline; late acceptances
reviewed by staff; reminders once each before the deadline and unclaimed members after it,
with a moved clock, through the real mailing machinery (real SMTP server, real worker)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases.models import Case, CaseStatus
from portal.errors import RuleViolation
from portal.extensions import db
from portal.mailings.models import Mailing
from portal.models import utcnow
from portal.programmes import deadline_tasks, optin, reminders
from portal.programmes.models import MemberStatus, ProgrammeMember, ProgrammeReminder
from tests.customer_helpers import open_page
from tests.mail_helpers import recipients_received
from tests.notice_helpers import make_event
from tests.programme_mail_helpers import (
    TERMS_EN,
    TERMS_ZH,
    add_member,
    customer_of,
    make_programme,
    start_programme_mailing,
)


def _member(member_id: int) -> ProgrammeMember:
    return db.session.get(ProgrammeMember, member_id, populate_existing=True)


def _form(page: str) -> dict[str, str]:
    """The hidden fields of the programme panel's form."""
    page = page[page.index('class="card programme-offer"'):]
    return {"offer_hash": re.search(r'name="offer_hash" value="([0-9a-f]+)"', page).group(1),
            "locale": re.search(r'name="locale" value="([a-zA-Z_]+)"', page).group(1)}


def test_a_member_accepts_the_offer_once_with_a_confirmed_action(app, users, client) -> None:
    programme = make_programme(make_event())
    member = add_member(users, programme, "Z1", "1280.50")
    db.session.commit()
    open_page(client, customer_of(member))
    page = client.get("/my").text
    assert "¥1,280.50" in page and TERMS_ZH in page and "请于" in page
    url = f"/my/programme/{member.id}/accept"

    unconfirmed = client.post(url, data=_form(page))
    assert unconfirmed.status_code == 422 and "请勾选以确认您接受该方案" in unconfirmed.text
    assert _member(member.id).status == MemberStatus.CREATED
    stale = client.post(url, data={**_form(page), "offer_hash": "0" * 64, "confirm": "yes"})
    assert stale.status_code == 422 and _member(member.id).status == MemberStatus.CREATED

    done = client.post(url, data={**_form(page), "confirm": "yes"})
    assert done.status_code == 303
    accepted = _member(member.id)
    assert accepted.status == MemberStatus.ACCEPTED and accepted.accepted_at is not None
    entry = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "programme.member_accepted"))
    assert entry.subject_id == str(member.id) and entry.after["amount"] == "1280.50"
    assert "您已接受 ¥1,280.50 的方案" in client.get("/my").text
    again = client.post(url, data={**_form(page), "confirm": "yes"})
    assert again.status_code == 422 and _member(member.id).accepted_at == accepted.accepted_at


def test_another_customer_cannot_accept_for_a_member(app, users, client) -> None:
    programme = make_programme(make_event())
    member = add_member(users, programme, "Z1", "10.00")
    intruder = add_member(users, programme, "Z2", "10.00")
    db.session.commit()
    open_page(client, customer_of(intruder))
    response = client.post(f"/my/programme/{member.id}/accept",
                           data={"offer_hash": "x", "locale": "zh_CN", "confirm": "yes"})
    assert response.status_code == 422
    assert _member(member.id).status == MemberStatus.CREATED


def test_a_late_acceptance_waits_for_staff_who_accept_or_refuse(
        app, users, client, auth) -> None:
    programme = make_programme(make_event(), deadline=utcnow() - timedelta(hours=1))
    first = add_member(users, programme, "E1", "50.00", locale="en")
    second = add_member(users, programme, "E2", "60.00", locale="en")
    db.session.commit()
    for member in (first, second):
        customer_client = app.test_client()
        open_page(customer_client, customer_of(member))
        page = customer_client.get("/my").text
        assert TERMS_EN in page and "has passed" in page
        response = customer_client.post(f"/my/programme/{member.id}/accept",
                                        data={**_form(page), "confirm": "yes"})
        assert response.status_code == 303
        assert _member(member.id).status == MemberStatus.LATE
        assert "we are reviewing your acceptance" in customer_client.get("/my").text

    auth.login(Role.FINANCE)
    assert client.post(f"/programmes/{programme.id}/late/{first.id}",
                       data={"decision": "accept"}).status_code == 403
    auth.logout()
    auth.login(Role.AGENT)
    for lang, words in (("en", "Late acceptances"), ("zh_CN", "逾期接受")):
        review = client.get(f"/programmes/{programme.id}/late?lang={lang}")
        assert review.status_code == 200 and words in review.text
        assert customer_of(first).external_ref in review.text
    client.post(f"/programmes/{programme.id}/late/{first.id}", data={"decision": "accept"})
    client.post(f"/programmes/{programme.id}/late/{second.id}", data={"decision": "refuse"})
    assert _member(first.id).status == MemberStatus.ACCEPTED
    refused = _member(second.id)
    assert (refused.status, refused.unclaimed_reason) == (MemberStatus.UNCLAIMED,
                                                          "not_accepted")
    # A second decision on the same member changes nothing.
    client.post(f"/programmes/{programme.id}/late/{first.id}", data={"decision": "refuse"})
    assert _member(first.id).status == MemberStatus.ACCEPTED
    actions = db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.action.like("programme.late_%"))).all()
    assert sorted(actions) == ["programme.late_accept", "programme.late_refuse"]


def test_proactive_members_see_what_they_will_be_paid_and_then_paid(
        app, users, client) -> None:
    programme = make_programme(make_event(), mode="proactive")
    member = add_member(users, programme, "E1", "75.25", locale="en")
    db.session.commit()
    open_page(client, customer_of(member))
    page = client.get("/my").text
    assert "You will be paid CN¥75.25." in page and "Accept the offer" not in page
    case = db.session.get(Case, member.case_id)
    case.status = CaseStatus.PAID
    db.session.commit()
    assert "Paid: CN¥75.25." in client.get("/my").text


@pytest.mark.integration
def test_reminders_go_once_each_and_the_deadline_makes_the_silent_unclaimed(
        app, users, scenario, smtp, run_worker, monkeypatch) -> None:
    event, notice = scenario
    handler = smtp()
    deadline = utcnow() + timedelta(days=10)
    programme = make_programme(event, deadline=deadline, threshold="5.00")
    waiting = add_member(users, programme, "W1", "100.00")
    english = add_member(users, programme, "W2", "80.00", locale="en")
    accepting = add_member(users, programme, "A1", "90.00")
    small = add_member(users, programme, "S1", "2.00")  # paid without asking
    db.session.commit()
    start_programme_mailing(users, programme, notice)
    run_worker()
    assert recipients_received(handler.directory) == Counter(
        {customer_of(m).email: 1 for m in (waiting, english, accepting, small)})
    optin.accept(accepting.id, customer_of(accepting),
                 hash_seen=optin.offer_hash(programme, accepting, "zh_CN"), locale="zh_CN",
                 confirmed=True)
    db.session.commit()

    def run_at(moment) -> None:
        monkeypatch.setattr(deadline_tasks, "utcnow", lambda: moment)
        assert deadline_tasks.queue_deadlines()
        run_worker()

    run_at(deadline - timedelta(days=8))  # no reminder due yet
    assert db.session.scalar(select(ProgrammeReminder.id)) is None
    for _ in range(2):  # the 7-day reminder, and a second run sends nothing more
        run_at(deadline - timedelta(days=6, hours=23))
    run_at(deadline - timedelta(hours=20))  # the 1-day reminder
    run_at(deadline - timedelta(hours=19))

    received = recipients_received(handler.directory)
    assert received[customer_of(waiting).email] == 3
    assert received[customer_of(english).email] == 3
    assert received[customer_of(accepting).email] == 1
    assert received[customer_of(small).email] == 1
    rows = db.session.scalars(select(ProgrammeReminder).order_by(ProgrammeReminder.days)).all()
    assert [(r.days, r.mailing_id is not None) for r in rows] == [(1, True), (7, True)]
    assert len(db.session.scalars(select(Mailing.id)).all()) == 3
    assert {_member(m.id).status for m in (waiting, english)} == {MemberStatus.CREATED}

    run_at(deadline + timedelta(minutes=1))
    for member in (waiting, english):
        gone = _member(member.id)
        assert (gone.status, gone.unclaimed_reason) == (MemberStatus.UNCLAIMED, "not_accepted")
    assert _member(accepting.id).status == MemberStatus.ACCEPTED
    assert _member(small.id).status == MemberStatus.CREATED
    # After the deadline an acceptance is still recorded, as late.
    monkeypatch.setattr(optin, "utcnow", lambda: deadline + timedelta(hours=2))
    late = optin.accept(waiting.id, customer_of(waiting),
                        hash_seen=optin.offer_hash(programme, _member(waiting.id), "zh_CN"),
                        locale="zh_CN", confirmed=True)
    assert late == MemberStatus.LATE


def test_reminder_days_come_from_the_configuration(app) -> None:
    app.config["PROGRAMME_REMINDER_DAYS"] = "3, 14,x,0"
    assert reminders.reminder_days() == [14, 3]


def test_accepting_needs_the_page_csrf_token(app_factory, users) -> None:
    csrf_app = app_factory(WTF_CSRF_ENABLED=True)
    with csrf_app.app_context():
        programme = make_programme(make_event())
        member = add_member(users, programme, "Z1", "10.00")
        db.session.commit()
        client = csrf_app.test_client()
        open_page(client, customer_of(member))
        page = client.get("/my").text
        forged = client.post(f"/my/programme/{member.id}/accept",
                             data={**_form(page), "confirm": "yes"})
        assert forged.status_code == 400
        assert _member(member.id).status == MemberStatus.CREATED
        token = re.search(r'name="csrf_token" value="([^"]+)"',
                          page[page.index("programme-offer"):]).group(1)
        done = client.post(f"/my/programme/{member.id}/accept",
                           data={**_form(page), "confirm": "yes", "csrf_token": token})
        assert done.status_code == 303
        assert _member(member.id).status == MemberStatus.ACCEPTED


def test_a_low_value_member_of_an_opt_in_programme_is_not_asked(app, users, client) -> None:
    programme = make_programme(make_event(), threshold="5.00")
    member = add_member(users, programme, "E1", "2.00", locale="en")
    db.session.commit()
    open_page(client, customer_of(member))
    page = client.get("/my").text
    assert "You will be paid CN¥2.00." in page and "Accept the offer" not in page
    with pytest.raises(RuleViolation, match="does not need to be accepted"):
        optin.accept(member.id, customer_of(member), hash_seen="", locale="en", confirmed=True)
