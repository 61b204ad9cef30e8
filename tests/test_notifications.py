"""Staff e-mails through the real SMTP server: legal's digest of sign-off requests, the
requester's decision, the assignee's case; opt-out, language, no customer data, sent once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.accounts import Role, User
from portal.auth import services as auth
from portal.cases import services as cases
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from portal.notifications import tasks
from portal.notifications.models import Notification, NotificationStatus
from portal.signoffs import services as signoffs
from tests.case_helpers import make_case, make_customer, second_agent


@pytest.fixture(autouse=True)
def notified(users) -> None:
    """The staff of these tests want their e-mails (the shared fixture switches them off)."""
    for user in users.values():
        user.notify_by_email = True


@pytest.fixture
def mail(app, smtp_server):
    app.config.update(SMTP_HOST=smtp_server["host"], SMTP_PORT=smtp_server["port"],
                      NOTIFY_DIGEST_SECONDS=0)
    return lambda: read_messages(smtp_server["dir"])


def _to(messages, user: User):
    return [m for m in messages if m["To"] == user.email]


def _proposed(users, order_ref: str, customer=None):
    case = make_case(users, amount="6000.00", order_ref=order_ref, customer=customer)
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    return case


def test_legal_gets_one_digest_of_several_requests_after_the_window(app, users, mail) -> None:
    app.config["NOTIFY_DIGEST_SECONDS"] = 600
    customer = make_customer(users)
    refs = [_proposed(users, f"O-{n}", customer).ref for n in range(3)]
    db.session.commit()
    assert tasks.deliver_due_job() == 0  # still inside the window: more may come
    assert mail() == []
    app.config["NOTIFY_DIGEST_SECONDS"] = 0
    assert tasks.deliver_due_job() == 1
    [message] = _to(mail(), users[Role.LEGAL])
    body = message.get_content()
    assert all(ref in body for ref in refs)
    assert "3" in message["Subject"]
    # Refs and titles only: neither the customer's name nor address.
    assert "王芳" not in body and "kunde@example.com" not in body
    assert tasks.deliver_due_job() == 0  # sent once
    assert len(mail()) == 1


def test_nobody_is_told_of_their_own_request_and_opt_out_is_respected(app, users, mail) -> None:
    quiet, _password = auth.create_user("legal2@example.com", "Quiet Legal", Role.LEGAL,
                                        "x" * 12, must_change_password=False)
    quiet.notify_by_email = False
    _proposed(users, "O-1")
    db.session.commit()
    tasks.deliver_due_job()
    assert [m["To"] for m in mail()] == [users[Role.LEGAL].email]
    assert db.session.scalar(select(Notification).where(
        Notification.recipient_id == quiet.id)) is None


def test_switching_off_after_the_request_skips_the_waiting_row(app, users, mail) -> None:
    _proposed(users, "O-1")
    db.session.commit()
    users[Role.LEGAL].notify_by_email = False
    db.session.commit()
    tasks.deliver_due_job()
    assert mail() == []
    row = db.session.scalar(select(Notification))
    assert row.status == NotificationStatus.SKIPPED


def test_the_profile_switches_the_emails_off(app, users, auth, client) -> None:
    auth.login(Role.LEGAL)
    page = client.get("/profile").get_data(as_text=True)
    assert 'name="notify_by_email"' in page and "checked" in page
    client.post("/profile", data={"name": "Legal Tester", "locale": ""})
    db.session.expire_all()
    assert users[Role.LEGAL].notify_by_email is False
    client.post("/profile", data={"name": "Legal Tester", "locale": "", "notify_by_email": "y"})
    db.session.expire_all()
    assert users[Role.LEGAL].notify_by_email is True


def test_the_requester_is_told_of_the_decision_in_their_language(app, users, mail,
                                                                 run_worker) -> None:
    users[Role.AGENT].locale = "en"
    case = _proposed(users, "O-1")
    db.session.commit()
    signoffs.decide(case.signoff_id, "changes_requested", "Evidence missing",
                    actor=users[Role.LEGAL])
    run_worker()  # the decision is due at once: its job was queued after the commit
    [message] = _to(mail(), users[Role.AGENT])
    body = message.get_content()
    assert case.ref in body and "Changes requested" in body and "Legal Tester" in body
    assert "Evidence missing" not in body  # legal's comment stays on the page
    assert f"/signoffs/{case.signoff_id}" in body


def test_the_assignee_is_told_in_chinese_and_not_when_assigning_oneself(app, users, mail,
                                                                        run_worker) -> None:
    other = second_agent()
    other.locale = "zh_CN"
    case = make_case(users)  # the agent opened it for themselves: no e-mail
    db.session.commit()
    run_worker()
    assert mail() == []
    cases.bulk_assign([case.id], other.id, actor=users[Role.AGENT])
    run_worker()
    [message] = mail()
    assert message["To"] == other.email
    body = message.get_content()
    assert f"案件 {case.ref} 已由 Agent Tester 分配给您" in body
    assert "王芳" not in body
    cases.bulk_assign([case.id], other.id, actor=users[Role.AGENT])  # no change, no e-mail
    run_worker()
    assert len(mail()) == 1


def test_a_refused_address_fails_the_rows_with_the_reason(app, users, smtp) -> None:
    smtp(refuse={users[Role.LEGAL].email})
    app.config["NOTIFY_DIGEST_SECONDS"] = 0
    _proposed(users, "O-1")
    db.session.commit()
    tasks.deliver_due_job()
    row = db.session.scalar(select(Notification))
    assert row.status == NotificationStatus.FAILED and row.error.startswith("550")
