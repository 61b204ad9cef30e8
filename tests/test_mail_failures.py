"""Mail that fails: one bad row fails that row only, one bad SMTP setting pauses the mailing
instead of failing everyone, and case replies follow the same rulebook; all against real SMTP
servers (scripted aiosmtpd answers, a closed port), real Redis and real RQ workers."""

from __future__ import annotations

import smtplib
import time
from collections import Counter
from datetime import timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import select, update

from portal import jobs
from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import services as cases
from portal.cases import tasks as case_tasks
from portal.cases.models import CaseNote
from portal.customers.models import Customer
from portal.extensions import db
from portal.mail import transport
from portal.mailings import services as mailings
from portal.mailings.models import Mailing, MailingRecipient, MailingStatus, RecipientStatus
from portal.models import utcnow
from tests.case_helpers import make_case
from tests.mail_helpers import free_port, recipients_received
from tests.test_mailings import add_customers, draft, start

pytestmark = pytest.mark.integration


def rows_by_customer() -> dict[int, MailingRecipient]:
    return {r.customer_id: r for r in db.session.scalars(select(MailingRecipient))}


def set_customer(customer: Customer, **values: str) -> None:
    """Data as an older import stored it, before names and addresses were checked."""
    db.session.execute(update(Customer).where(Customer.id == customer.id).values(**values))
    db.session.commit()


# ------------------------------------------------------------------ one row fails, alone

def test_a_newline_in_a_name_gives_a_well_formed_to_header_and_the_chunk_goes_on(
        app, users, scenario, smtp, run_worker) -> None:
    event, notice = scenario
    handler = smtp()
    people = add_customers(users, event, 4, locale="en")
    set_customer(people[1], name="Anna\nSchmidt: VIP")
    mailing = draft(users, event, notice)
    start(users, mailing)
    run_worker()
    assert recipients_received(handler.directory) == Counter({c.email: 1 for c in people})
    raw = next(p.read_bytes() for p in handler.directory.glob("*.eml")
               if people[1].email.encode() in p.read_bytes().split(b"\r\n\r\n")[0])
    headers = raw.split(b"\r\n\r\n")[0].decode()
    assert f"To: Anna Schmidt: VIP <{people[1].email}>" in headers or \
        f'To: "Anna Schmidt: VIP" <{people[1].email}>' in headers
    assert "\nSchmidt" not in headers
    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE


def test_any_exception_sending_one_message_fails_that_row_only_with_its_reason(
        app, users, scenario, smtp, run_worker) -> None:
    """A line break in an address would inject a header (smtplib drops it from the envelope,
    so the message still went out): that row fails with the reason, the rest are sent."""
    event, notice = scenario
    handler = smtp()
    people = add_customers(users, event, 4)
    set_customer(people[1], email="k1@example.com\r\nRCPT TO:<intruder@example.com>")
    mailing = draft(users, event, notice)
    start(users, mailing)
    run_worker()
    received = recipients_received(handler.directory)
    assert received == Counter({c.email: 1 for c in people if c is not people[1]})
    bad = rows_by_customer()[people[1].id]
    assert (bad.status == RecipientStatus.FAILED and "control character" in bad.last_error
            and bad.attempts == 1)
    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE
    report = "".join(mailings.report_csv(db.session.get(Mailing, mailing.id)))
    assert "control character" in report


def test_a_row_left_sending_too_often_is_failed_with_a_reason_not_sent_forever(
        app, users, scenario, smtp, run_worker) -> None:
    event, notice = scenario
    handler = smtp()
    people = add_customers(users, event, 2)
    app.config["MAILING_MAX_ATTEMPTS"] = 3
    mailing = draft(users, event, notice)
    mailings.start(mailing, actor=users[Role.AGENT])  # not queued: as if the job was lost
    db.session.execute(update(MailingRecipient).where(
        MailingRecipient.customer_id == people[0].id).values(
        status=RecipientStatus.SENDING, claimed_at=utcnow() - timedelta(minutes=10), attempts=3))
    db.session.commit()
    assert jobs.reconcile_all(timedelta(0)) == 1
    run_worker()
    assert recipients_received(handler.directory) == Counter({people[1].email: 1})
    stuck = rows_by_customer()[people[0].id]
    assert (stuck.status == RecipientStatus.FAILED
            and "worker stopped while sending" in stuck.last_error)
    assert "worker stopped while sending" in "".join(mailings.report_csv(mailing))
    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE
    recovered = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "mailing.recover"))
    assert "failed after the last attempt: 1" in recovered.summary


# ------------------------------------------------- one bad setting pauses, never fails all

def _break_the_setting(how: str, smtp, app) -> None:
    if how == "connection refused":
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())  # nothing listens
    elif how == "535 at login":
        smtp(require_login=True)
        app.config.update(SMTP_USERNAME="portal", SMTP_PASSWORD="wrong")
    else:
        smtp(refuse_sender=True)


@pytest.mark.parametrize("how, reason", [("connection refused", "ConnectionRefusedError"),
                                         ("535 at login", "535"),
                                         ("5xx on MAIL FROM", "553")])
def test_a_bad_smtp_setting_pauses_the_mailing_and_resume_sends_everyone(
        app, users, scenario, smtp, run_worker, client, auth, how, reason) -> None:
    event, notice = scenario
    app.config["MAILING_CHUNK_SIZE"] = 2
    people = add_customers(users, event, 6)
    _break_the_setting(how, smtp, app)
    mailing = draft(users, event, notice)
    start(users, mailing)
    run_worker()
    mailing = db.session.get(Mailing, mailing.id)
    assert mailing.status == MailingStatus.PAUSED and reason in mailing.pause_reason
    rows = rows_by_customer().values()
    # nobody counted
    assert {(r.status, r.attempts) for r in rows} == {(RecipientStatus.PENDING, 0)}
    [paused] = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "mailing.pause")).all()
    assert paused.actor_label == "system" and reason in paused.summary

    auth.login(Role.AGENT)
    page = client.get(f"/mailings/{mailing.id}").get_data(as_text=True)
    assert "Paused by itself: the mail server cannot be used" in page and reason in page
    client.post("/language", data={"locale": "zh_CN", "next": "/"})
    page = client.get(f"/mailings/{mailing.id}").get_data(as_text=True)
    assert "自动暂停" in page and reason in page

    handler = smtp()  # the setting is fixed
    chunks = mailings.resume(mailing, actor=users[Role.AGENT])
    assert chunks == [0, 1, 2] and db.session.get(Mailing, mailing.id).pause_reason is None
    from portal.mailings import tasks

    assert tasks.queue_chunks(mailing.id, chunks)
    run_worker()
    assert recipients_received(handler.directory) == Counter({c.email: 1 for c in people})
    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE


# --------------------------------------------------------------- one client, one rulebook

def test_one_rulebook_judges_real_server_answers(app, smtp, tmp_path) -> None:
    def attempt() -> transport.Failure:
        message = EmailMessage()
        message["Subject"] = "x"
        message.set_content("x")
        with transport.Client() as client, pytest.raises(Exception) as caught:
            client.send(message, "noreply@aftercare.example", ["kunde@example.com"])
        return transport.classify(caught.value)

    smtp(refuse={"kunde@example.com"})
    assert attempt() == transport.Failure(transport.RECIPIENT, False,
                                          "550 5.1.1 No such user here")
    smtp(defer={"kunde@example.com": 1})
    failure = attempt()
    assert (failure.scope, failure.temporary) == (transport.RECIPIENT, True)
    smtp(refuse_sender=True)
    assert attempt().scope == transport.CONNECTION and not attempt().temporary
    smtp(require_login=True)
    app.config.update(SMTP_USERNAME="portal", SMTP_PASSWORD="wrong")
    failure = attempt()
    assert (failure.scope, failure.temporary) == (transport.CONNECTION, False)
    assert failure.reason.startswith("535")
    app.config.update(SMTP_USERNAME="", SMTP_PORT=free_port())
    failure = attempt()
    assert (failure.scope, failure.temporary) == (transport.CONNECTION, True)
    assert isinstance(transport.classify(smtplib.SMTPServerDisconnected("gone")),
                      transport.Failure)


# ---------------------------------------------------------------------------- case replies

def reply(users) -> CaseNote:
    case = make_case(users)
    note = cases.add_reply(case, "您的退款正在处理。", actor=users[Role.AGENT])
    assert case_tasks.queue_reply(note.id)
    return note


def test_a_reply_refused_permanently_fails_with_its_reason_and_is_not_retried(
        app, users, smtp, run_worker, client, auth) -> None:
    handler = smtp(refuse={"kunde@example.com"})
    note = reply(users)
    run_worker()
    note = db.session.get(CaseNote, note.id)
    assert note.mail_status == "failed" and note.error.startswith("550")
    assert jobs.reconcile_all(timedelta(0)) == 0
    run_worker()
    assert handler.rcpt_answers == [("kunde@example.com", "550")]  # tried once
    auth.login(Role.AGENT)
    page = client.get(f"/cases/{note.case_id}").get_data(as_text=True)
    assert "Not delivered: 550 5.1.1 No such user here" in page


def test_a_reply_deferred_is_retried_with_back_off_up_to_the_cap(
        app, users, smtp, run_worker) -> None:
    handler = smtp(defer={"kunde@example.com": 1})
    app.config["MAILING_RETRY_BASE_SECONDS"] = 60
    note = reply(users)
    run_worker()
    note = db.session.get(CaseNote, note.id)
    assert (note.mail_status, note.mail_attempts) == ("queued", 1)
    assert note.error.startswith("451") and note.next_attempt_at > utcnow()
    assert jobs.reconcile_all(timedelta(0)) == 0  # not due yet
    db.session.execute(update(CaseNote).values(next_attempt_at=utcnow()))
    db.session.commit()
    assert jobs.reconcile_all(timedelta(0)) == 1
    run_worker()
    note = db.session.get(CaseNote, note.id)
    assert (note.mail_status, note.mail_attempts, note.error) == ("sent", 2, None)
    assert recipients_received(handler.directory) == Counter({"kunde@example.com": 1})

    smtp(defer={"kunde@example.com": 10})
    app.config.update(MAILING_MAX_ATTEMPTS=2, MAILING_RETRY_BASE_SECONDS=0.01)
    capped = reply(users)
    for _ in range(3):
        run_worker()
        time.sleep(0.05)
        jobs.reconcile_all(timedelta(0))
    capped = db.session.get(CaseNote, capped.id)
    assert (capped.mail_status, capped.mail_attempts) == ("failed", 2)
    assert capped.error.startswith("451")


def test_a_reply_left_sending_by_a_dead_worker_is_recovered(app, users, smtp,
                                                             run_worker) -> None:
    handler = smtp()
    note = reply(users)
    db.session.execute(update(CaseNote).where(CaseNote.id == note.id).values(
        mail_status="sending", claimed_at=utcnow() - timedelta(minutes=10), mail_attempts=1))
    db.session.commit()
    assert jobs.reconcile_all(timedelta(0)) == 1
    run_worker()
    note = db.session.get(CaseNote, note.id)
    assert (note.mail_status, note.mail_attempts) == ("sent", 2)
    assert note.message_id == f"<case-reply-{note.id}@127.0.0.1>"  # the same when sent again
    assert recipients_received(handler.directory) == Counter({"kunde@example.com": 1})
    assert db.session.scalar(select(AuditEntry.id).where(
        AuditEntry.action == "case.reply_recover"))

    app.config["MAILING_MAX_ATTEMPTS"] = 2
    stuck = reply(users)
    db.session.execute(update(CaseNote).where(CaseNote.id == stuck.id).values(
        mail_status="sending", claimed_at=utcnow() - timedelta(minutes=10), mail_attempts=2))
    db.session.commit()
    jobs.reconcile_all(timedelta(0))
    stuck = db.session.get(CaseNote, stuck.id)
    assert stuck.mail_status == "failed" and "worker stopped" in stuck.error


def test_an_unreachable_server_keeps_the_reply_for_a_retry(app, users, run_worker) -> None:
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())  # nothing listens
    note = reply(users)
    run_worker()
    note = db.session.get(CaseNote, note.id)
    assert note.mail_status == "queued" and "ConnectionRefusedError" in note.error
    assert note.next_attempt_at is not None
