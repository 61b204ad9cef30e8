"""Mailings: what may be sent, to whom, personalised how; and delivery that loses nobody and
mails nobody twice, against a real SMTP server, real Redis and real RQ workers."""

from __future__ import annotations

import html
import os
import re
import signal
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from redis import Redis
from sqlalchemy import func, select, update

from portal import jobs
from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import services as cases
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from portal.mailings import audience, compose, tasks
from portal.mailings import services as mailings
from portal.mailings.models import (
    Mailing,
    MailingRecipient,
    MailingStatus,
    RecipientStatus,
)
from portal.mailings.unsubscribe import customer_for_token, unsubscribe_token
from portal.models import utcnow
from portal.notices import publishing
from portal.notices import services as notices
from portal.signoffs import services as signoffs
from tests.mail_helpers import recipients_received, start_server, start_worker
from tests.notice_helpers import EN, ZH, make_event, make_notice, pdf_text_and_fonts
from tests.notice_helpers import publish as publish_notice


def approve(notice, users, mandatory: bool = False) -> None:
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL], mandatory=mandatory)


def add_customers(users, event, count: int, **fields) -> list[Customer]:
    made = []
    for i in range(count):
        locale = fields.get("locale") or ("en" if i % 3 == 0 else "zh_CN")
        made.append(customers.create_customer(event, {
            "external_ref": f"{fields.get('prefix', 'K')}{i:04d}", "name": f"客户{i}",
            "email": f"{fields.get('prefix', 'k').lower()}{i}@example.com", "locale": locale,
            "tags": fields.get("tags", "")}, actor=users[Role.AGENT]))
    return made


def draft(users, event, notice, **kw) -> Mailing:
    data = mailings.MailingInput(
        version_id=notice.latest_version.id,
        audience=audience.Audience.from_dict(kw.pop("audience", {})),
        attach_pdf=kw.pop("attach_pdf", False),
        greeting_zh=kw.pop("greeting_zh", compose.DEFAULT_GREETINGS["zh_CN"]),
        greeting_en=kw.pop("greeting_en", compose.DEFAULT_GREETINGS["en"]))
    return mailings.create_mailing(event, data, actor=users[Role.AGENT])


def start(users, mailing: Mailing, repeat_confirmed: bool = False) -> list[int]:
    chunks = mailings.start(mailing, actor=users[Role.AGENT], repeat_confirmed=repeat_confirmed)
    db.session.commit()  # as the view's boundary does, before the chunks are queued
    assert tasks.queue_chunks(mailing.id, chunks)
    return chunks


# ----------------------------------------------------------------------------- what is sent

def test_only_text_legal_approved_can_be_mailed(app, users) -> None:
    event = make_event()
    notice = make_notice(users, event)
    with pytest.raises(RuleViolation, match="not approved"):
        draft(users, event, notice)
    approve(notice, users)
    mailing = draft(users, event, notice)
    assert compose.sendable_versions(event) == [(notice, notice.latest_version)]
    # An edit voids the grant: the draft mailing can no longer start.
    notices.save(notice, content={"zh_CN": {"title": "新标题", "body": "x"}}, audience="public",
                 planned_publish_at=None, based_on=notice.latest_version.number,
                 actor=users[Role.AGENT])
    add_customers(users, event, 1)
    with pytest.raises(RuleViolation, match="not approved"):
        mailings.start(mailing, actor=users[Role.AGENT])
    assert db.session.scalar(select(MailingRecipient.id)) is None


def test_emergency_publication_awaiting_review_cannot_be_mailed(app, users) -> None:
    event = make_event("sev1")
    notice = make_notice(users, event)
    publishing.emergency_publish(notice, reason="Outage now", actor=users[Role.ADMIN])
    with pytest.raises(RuleViolation, match="not approved"):
        draft(users, event, notice)


def test_greetings_are_sandboxed_and_checked_when_saved(app, users, scenario) -> None:
    event, notice = scenario
    for bad in ("{{ name.__class__.__mro__ }}", "{{ unknown }}", "{% for %}"):
        with pytest.raises(RuleViolation) as err:
            draft(users, event, notice, greeting_zh=bad)
        assert err.value.field == "greeting_zh"
    assert db.session.scalar(select(Mailing.id)) is None


def _recipient_rows(mailing_id: int) -> dict[int, MailingRecipient]:
    return {r.customer_id: r for r in db.session.scalars(select(MailingRecipient).where(
        MailingRecipient.mailing_id == mailing_id))}


@pytest.mark.integration
def test_a_greeting_that_fails_for_one_customer_fails_that_row_with_the_reason(
        app, users, scenario, smtp, run_worker, client, auth) -> None:
    event, notice = scenario
    handler = smtp()
    people = add_customers(users, event, 3, locale="zh_CN")
    # Passes when saved (as the sample customer); for 客户1 it makes 1,000 loop rounds.
    rounds = "{% for a in 'abcdefghij' %}" * 3 + "{% endfor %}" * 3
    mailing = draft(users, event, notice,
                    greeting_zh="{% if name == '客户1' %}" + rounds + "{% endif %}您好 {{ name }}")
    auth.login(Role.AGENT)
    preview = client.get(f"/mailings/{mailing.id}/preview?customer={people[1].id}")
    assert preview.status_code == 200 and "at most 200 loop rounds" in preview.text
    start(users, mailing)
    run_worker()
    rows = _recipient_rows(mailing.id)
    failed = rows[people[1].id]
    assert (failed.status == RecipientStatus.FAILED
            and "at most 200 loop rounds" in failed.last_error)
    assert {rows[p.id].status for p in (people[0], people[2])} == {RecipientStatus.SENT}
    assert recipients_received(handler.directory) == Counter(
        {people[0].email: 1, people[2].email: 1})
    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE


@pytest.mark.integration
def test_a_stored_greeting_that_breaks_the_rules_fails_every_row_never_the_chunk(
        app, users, scenario, smtp, run_worker) -> None:
    event, notice = scenario
    handler = smtp()
    add_customers(users, event, 3, locale="zh_CN")
    mailing = draft(users, event, notice)
    start(users, mailing)
    # Saved before today's rules, say: compiling it used to take the job down (or hang it).
    db.session.execute(update(Mailing).where(Mailing.id == mailing.id)
                       .values(greeting_zh="{{ 9**(9**7) }}"))
    db.session.commit()
    run_worker()
    rows = _recipient_rows(mailing.id).values()
    assert {r.status for r in rows} == {RecipientStatus.FAILED}
    assert all("Powers (**) are not allowed" in r.last_error for r in rows)
    assert recipients_received(handler.directory) == Counter()
    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE


def test_a_greeting_refused_when_saved_shows_why_next_to_the_field(
        app, users, scenario, client, auth) -> None:
    event, notice = scenario
    auth.login(Role.AGENT)
    url = f"/mailings/event/{event.id}/new"
    for lang, expected in (("en", "Powers (**) are not allowed"), ("zh_CN", "不能使用乘方")):
        response = client.post(f"{url}?lang={lang}", data={
            "version_id": notice.latest_version.id, "greeting_en": "",
            "greeting_zh": "{% if name != '王芳' %}{{ 10**5000 }}{% endif %}"})
        page = response.get_data(as_text=True)
        assert response.status_code == 422 and "greeting_zh-error" in page
        assert expected in page
    assert db.session.scalar(select(Mailing.id)) is None


def test_audience_filters_and_skips(app, users, scenario) -> None:
    event, _notice = scenario
    vip = add_customers(users, event, 3, prefix="V", tags="vip", locale="en")
    add_customers(users, event, 4, prefix="N", locale="zh_CN")
    customers.create_customer(event, {"external_ref": "X1", "name": "无邮箱", "email": ""},
                              actor=users[Role.AGENT])
    vip[0].unsubscribed_at = utcnow()
    db.session.commit()
    case = cases.open_case(vip[1], cases.CaseInput("refund", "O-9", "88.00", "CNY",
                                                   "service_outage", "", None),
                           actor=users[Role.AGENT])
    everyone = audience.summarise(event.id, audience.Audience(), mandatory=False)
    assert (everyone.matching, everyone.to_send, everyone.unsubscribed, everyone.no_email) == (
        8, 6, 1, 1)
    assert audience.summarise(event.id, audience.Audience(), mandatory=True).to_send == 7
    assert audience.summarise(event.id, audience.Audience(tags=("vip",)), False).matching == 3
    assert audience.summarise(event.id, audience.Audience(locales=("zh_CN",)), False).matching == 5
    with_case = audience.summarise(event.id, audience.Audience(case_statuses=(case.status,)),
                                   False)
    assert [c.id for c in with_case.sample] == [vip[1].id]
    no_case = audience.summarise(event.id, audience.Audience(case_statuses=("none",)), False)
    assert no_case.matching == 7


# ----------------------------------------------------------------------------- delivery

@pytest.mark.integration
def test_every_recipient_gets_exactly_one_personalised_message(app, users, scenario, smtp,
                                                               run_worker) -> None:
    event, notice = scenario
    app.config["MAILING_CHUNK_SIZE"] = 10
    handler = smtp()
    people = add_customers(users, event, 25)
    case = cases.open_case(people[1], cases.CaseInput("compensation", "O-1", "1280.50", "CNY",
                                                      "service_outage", "", None),
                           actor=users[Role.AGENT])
    mailing = draft(users, event, notice)
    assert start(users, mailing) == [0, 1, 2]
    run_worker()
    received = recipients_received(handler.directory)
    assert received == Counter({c.email: 1 for c in people})
    mailing = db.session.get(Mailing, mailing.id)
    assert mailing.status == MailingStatus.DONE and mailing.finished_at is not None
    assert mailings.progress(mailing).counts[RecipientStatus.SENT] == 25
    by_to = {m["X-Envelope-To"]: m for m in read_messages(handler.directory)}
    zh = by_to[people[1].email]
    assert zh["Subject"] == "CRM 系统故障通知"
    text = zh.get_body(("plain",)).get_content()
    assert f"尊敬的{people[1].name}" in text and case.ref in text and "CNY 1,280.50" in text
    html = zh.get_body(("html",)).get_content()
    assert "<strong>400-800-1234</strong>" in html and case.ref in html
    unsubscribe = str(zh["List-Unsubscribe"]).strip()
    assert unsubscribe.startswith("<http") and "/unsubscribe/" in unsubscribe
    assert zh["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    en = by_to[people[0].email]
    assert en["Subject"] == "CRM outage" and "Dear 客户0" in en.get_body(("plain",)).get_content()
    row = db.session.scalar(select(MailingRecipient).where(
        MailingRecipient.customer_id == people[1].id))
    assert row.message_id == zh["Message-ID"] and row.attempts == 1
    # Running a chunk again, or the reconciler, sends nothing more.
    assert tasks.send_chunk_job.func(mailing.id, 0) == 0
    assert jobs.reconcile_all(timedelta(0)) == 0
    assert recipients_received(handler.directory) == received
    finish = [e.summary for e in db.session.scalars(select(AuditEntry))
              if e.action == "mailing.finish"]
    assert finish == [f"Mailing {mailing.id} finished: sent: 25, failed: 0, skipped: 0"]


@pytest.mark.integration
def test_unsubscribed_customers_are_skipped_unless_legal_made_it_mandatory(
        app, users, smtp, run_worker) -> None:
    handler = smtp()
    event = make_event()
    people = add_customers(users, event, 3)
    people[0].unsubscribed_at = utcnow()
    db.session.commit()
    ordinary = make_notice(users, event)
    approve(ordinary, users)
    start(users, draft(users, event, ordinary))
    run_worker()
    assert people[0].email not in recipients_received(handler.directory)
    skipped = db.session.scalar(select(MailingRecipient).where(
        MailingRecipient.customer_id == people[0].id))
    assert (skipped.status, skipped.last_error) == ("skipped", "unsubscribed")

    legal_notice = make_notice(users, event)
    approve(legal_notice, users, mandatory=True)
    mailing = draft(users, event, legal_notice)
    start(users, mailing)
    run_worker()
    assert db.session.get(Mailing, mailing.id).mandatory
    assert recipients_received(handler.directory)[people[0].email] == 1


def test_only_an_approved_notice_can_be_marked_mandatory(app, users, scenario) -> None:
    event, _notice = scenario
    notice = make_notice(users, event)
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    with pytest.raises(RuleViolation, match="mandatory"):
        signoffs.decide(request.id, "rejected", "no", actor=users[Role.LEGAL], mandatory=True)
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL], mandatory=True)
    assert signoffs.granted(notices.SUBJECT, notice.latest_version.id).mandatory


@pytest.mark.integration
def test_temporary_failure_is_retried_and_permanent_failure_fails_one_address(
        app, users, scenario, smtp, run_worker) -> None:
    event, notice = scenario
    people = add_customers(users, event, 5)
    handler = smtp(defer={people[1].email: 1}, refuse={people[3].email})
    mailing = draft(users, event, notice)
    start(users, mailing)
    run_worker()
    received = recipients_received(handler.directory)
    assert received == Counter({c.email: 1 for c in people if c is not people[3]})
    assert (people[1].email, "451") in handler.rcpt_answers
    rows = {r.customer_id: r for r in db.session.scalars(select(MailingRecipient))}
    assert rows[people[1].id].status == RecipientStatus.SENT and rows[people[1].id].attempts == 2
    failed = rows[people[3].id]
    assert failed.status == "failed" and failed.last_error.startswith("550") \
        and failed.attempts == 1
    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE


@pytest.mark.integration
def test_temporary_failures_give_up_after_the_last_attempt(app, users, scenario, smtp,
                                                          run_worker) -> None:
    event, notice = scenario
    [person] = add_customers(users, event, 1)
    app.config["MAILING_MAX_ATTEMPTS"] = 3
    handler = smtp(defer={person.email: 10})
    start(users, draft(users, event, notice))
    run_worker()
    row = db.session.scalar(select(MailingRecipient))
    assert (row.status, row.attempts) == ("failed", 3) and row.last_error.startswith("451")
    assert not recipients_received(handler.directory)


@pytest.mark.integration
def test_flushall_mid_batch_then_the_reconciler_completes_it(app, users, scenario, smtp,
                                                             run_worker, redis_url) -> None:
    event, notice = scenario
    app.config["MAILING_CHUNK_SIZE"] = 5
    people = add_customers(users, event, 20)

    def flush_on_third(n: int) -> bool:
        if n == 3:
            Redis.from_url(redis_url).flushall()
        return True

    handler = smtp(before_store=flush_on_third)
    mailing = draft(users, event, notice)
    start(users, mailing)
    run_worker()
    sent = recipients_received(handler.directory)
    assert sum(sent.values()) == 5  # the running chunk finished; the queued ones were lost
    assert jobs.reconcile_all(timedelta(0)) == 3
    run_worker()
    assert recipients_received(handler.directory) == Counter({c.email: 1 for c in people})
    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE


@pytest.mark.integration
def test_worker_killed_mid_batch_then_restarted_completes_with_no_duplicate(
        app, users, scenario, smtp, database_url, redis_url, tmp_path) -> None:
    """SIGKILL lands while the worker is inside an SMTP transaction (the server has the
    message but has not stored or acknowledged it)."""
    from tests.conftest import make_config

    event, notice = scenario
    app.config["MAILING_CHUNK_SIZE"] = 10
    people = add_customers(users, event, 30)
    worker = None

    def kill_on_twelfth(n: int) -> bool:
        if n == 12:
            os.kill(worker.pid, signal.SIGKILL)
            return False
        return True

    handler = smtp(before_store=kill_on_twelfth)
    config = make_config(database_url, redis_url, tmp_path / "worker",
                         SMTP_HOST="127.0.0.1", SMTP_PORT=app.config["SMTP_PORT"],
                         MAILING_CHUNK_SIZE=10)
    mailing = draft(users, event, notice)
    start(users, mailing)
    worker = start_worker(config)
    assert worker.wait(timeout=60) == -signal.SIGKILL
    db.session.expire_all()
    in_doubt = db.session.scalars(select(MailingRecipient).where(
        MailingRecipient.status == RecipientStatus.SENDING)).all()
    assert len(in_doubt) == 1
    assert sum(recipients_received(handler.directory).values()) == 11
    app.config["MAILING_LEASE_SECONDS"] = 0  # the dead worker's lease has run out
    assert jobs.reconcile_all(timedelta(0)) == 1  # its chunk; the others are still queued
    restarted = start_worker(config, burst=True)
    assert restarted.wait(timeout=60) == 0
    db.session.expire_all()
    assert recipients_received(handler.directory) == Counter({c.email: 1 for c in people})
    assert db.session.get(Mailing, mailing.id).status == MailingStatus.DONE
    assert db.session.get(MailingRecipient, in_doubt[0].id).attempts == 2


@pytest.mark.integration
def test_a_row_left_in_doubt_is_sent_again_with_the_same_message_id(
        app, users, scenario, smtp, run_worker) -> None:
    """The documented window: the server accepted, the worker died before recording it."""
    event, notice = scenario
    [person] = add_customers(users, event, 1)
    handler = smtp()
    mailing = draft(users, event, notice)
    mailings.start(mailing, actor=users[Role.AGENT])  # not queued: as if the job was lost
    row = db.session.scalar(select(MailingRecipient))
    db.session.execute(update(MailingRecipient).values(
        status=RecipientStatus.SENDING, claimed_at=utcnow() - timedelta(minutes=10), attempts=1))
    db.session.commit()
    assert jobs.reconcile_all(timedelta(0)) == 1
    run_worker()
    row = db.session.get(MailingRecipient, row.id)
    assert row.status == RecipientStatus.SENT and row.attempts == 2
    [message] = read_messages(handler.directory)
    assert message["Message-ID"] == compose.message_id(mailing.id, row.id, "127.0.0.1")
    assert recipients_received(handler.directory) == Counter({person.email: 1})
    recovered = db.session.scalar(select(AuditEntry).where(AuditEntry.action ==
                                                           "mailing.recover"))
    assert recovered.subject_id == str(mailing.id)
    assert "in doubt and sent again: 1" in recovered.summary


@pytest.mark.integration
def test_pause_resume_and_cancel(app, users, scenario, smtp, run_worker) -> None:
    event, notice = scenario
    people = add_customers(users, event, 6)
    handler = smtp()
    mailing = draft(users, event, notice)
    start(users, mailing)
    mailings.pause(mailing, actor=users[Role.AGENT])
    run_worker()
    assert not recipients_received(handler.directory)
    with pytest.raises(RuleViolation):
        mailings.pause(mailing, actor=users[Role.AGENT])
    chunks = mailings.resume(mailing, actor=users[Role.AGENT])
    assert tasks.queue_chunks(mailing.id, chunks)
    run_worker()
    assert recipients_received(handler.directory) == Counter({c.email: 1 for c in people})

    other = draft(users, event, notice)
    start(users, other, repeat_confirmed=True)  # the same version again, on purpose
    assert mailings.cancel(other, actor=users[Role.AGENT]) == 6
    run_worker()
    assert sum(recipients_received(handler.directory).values()) == 6
    assert mailings.progress(other).counts["cancelled"] == 6
    with pytest.raises(RuleViolation):
        mailings.resume(other, actor=users[Role.AGENT])


@pytest.mark.integration
def test_redis_down_keeps_the_mailing_queued_until_it_is_back(
        app_factory, users, redis_url, tmp_path, run_worker) -> None:
    """Started while Redis is unreachable: the page says so; nothing is lost afterwards."""
    down = app_factory(REDIS_URL=f"unix://{tmp_path}/nothing.sock")
    with down.app_context():
        event = make_event()
        notice = make_notice(users, event)
        publish_notice(notice, users)
        emails = [c.email for c in add_customers(users, event, 3)]
        mailing_id = draft(users, event, notice).id
        db.session.commit()
    client = down.test_client()
    client.post("/login", data={"email": users[Role.AGENT].email,
                                "password": "correct-horse-battery"})
    page = client.post(f"/mailings/{mailing_id}/start", follow_redirects=True).get_data(
        as_text=True)
    assert "mail queue cannot be reached" in page
    up = app_factory()
    controller, handler, port = start_server(tmp_path / "mail")
    try:
        up.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
        with up.app_context():
            assert db.session.get(Mailing, mailing_id).status == "sending"
            assert jobs.reconcile_all(timedelta(0)) == 1
            run_worker()
            assert recipients_received(handler.directory) == Counter(dict.fromkeys(emails, 1))
    finally:
        controller.stop()


@pytest.mark.integration
def test_signed_pdf_is_attached_even_before_publication_in_each_recipients_language(
        app, users, smtp, run_worker, tmp_path) -> None:
    event = make_event()
    notice = make_notice(users, event)
    approve(notice, users)  # approved, not published: legal's grant stamps the PDF
    english, chinese = add_customers(users, event, 2)  # the first reads English
    assert (english.locale, chinese.locale) == ("en", "zh_CN")
    handler = smtp()
    mailing = draft(users, event, notice, attach_pdf=True)
    assert jobs.reconcile_all(timedelta(0)) == 2  # the PDF rows the draft asked for
    run_worker()
    start(users, mailing)
    run_worker()
    messages = {m["To"].addresses[0].addr_spec: m for m in read_messages(handler.directory)}
    texts = {}
    for customer in (english, chinese):
        [attachment] = list(messages[customer.email].iter_attachments())
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_filename() == f"{notice.ref}-v1-{customer.locale}.pdf"
        path = tmp_path / f"attached-{customer.locale}.pdf"
        path.write_bytes(attachment.get_content())
        texts[customer.locale] = pdf_text_and_fonts(path)[0]
        assert notice.ref in texts[customer.locale]
        assert "DRAFT" not in texts[customer.locale] and "草稿" not in texts[customer.locale]
    assert EN["title"] in texts["en"] and ZH["title"] not in texts["en"]
    assert ZH["title"] in texts["zh_CN"] and EN["title"] not in texts["zh_CN"]


def test_start_refuses_until_the_pdf_is_ready(app, users, scenario) -> None:
    event, notice = scenario
    add_customers(users, event, 1)
    mailing = draft(users, event, notice, attach_pdf=True)
    with pytest.raises(RuleViolation, match="PDF"):
        mailings.start(mailing, actor=users[Role.AGENT])
    assert db.session.get(Mailing, mailing.id).status == "draft"


@pytest.mark.integration
def test_start_waits_for_the_pdf_of_each_recipients_language(app, users, run_worker,
                                                             tmp_path) -> None:
    """Only the Chinese PDF is rendered: a mailing that reaches English readers waits (as for
    any PDF not ready), one to Chinese readers only may start."""
    from portal.notices import pdf as notice_pdf

    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    event = make_event()
    notice = make_notice(users, event)
    approve(notice, users)
    add_customers(users, event, 2)
    everyone = draft(users, event, notice, attach_pdf=True)
    chinese_only = draft(users, event, notice, attach_pdf=True,
                         audience={"locales": ["zh_CN"]})
    db.session.commit()
    zh_row = notices.signed_pdfs(notice.latest_version.id)["zh_CN"]
    notice_pdf.PIPELINE.queue(zh_row.id)
    run_worker()
    with pytest.raises(RuleViolation, match="PDF"):
        mailings.start(everyone, actor=users[Role.AGENT])
    db.session.rollback()
    assert mailings.start(chinese_only, actor=users[Role.AGENT])


# ----------------------------------------------------------------------------- unsubscribe

def test_unsubscribe_link_asks_first_and_one_click_post_records_it(app, users, scenario,
                                                                   client) -> None:
    event, _notice = scenario
    [person] = add_customers(users, event, 1)
    url = f"/unsubscribe/{unsubscribe_token(person.id)}"
    page = client.get(url)
    assert page.status_code == 200 and "no-store" in page.headers["Cache-Control"]
    assert db.session.get(Customer, person.id).unsubscribed_at is None  # GET changes nothing
    response = client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    db.session.expire_all()
    assert db.session.get(Customer, person.id).unsubscribed_at is not None
    from portal.audit import services as audit

    assert next(e.action for e in audit.history("customer", person.id)) == "customer.unsubscribe"
    assert client.post(url).status_code == 200  # twice is harmless
    assert client.get("/unsubscribe/forged-token").status_code == 404
    assert client.get(url + "?lang=xx-!!").status_code == 200  # unknown: the customer's own
    assert "退订" in client.get(url + "?lang=zh_CN").get_data(as_text=True)


def _unsubscribe_paths(text: str) -> set[str]:
    return {urlsplit(html.unescape(url)).path
            for url in re.findall(r"https?://[^\s\"'<>]*/unsubscribe/[^\s\"'<>]*", text)}


def _unsubscribed_anyone() -> bool:
    return db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "customer.unsubscribe")) > 0


def test_the_staff_preview_carries_an_inert_unsubscribe_link(app, users, scenario, client,
                                                             auth) -> None:
    event, notice = scenario
    [person] = add_customers(users, event, 1)
    mailing = draft(users, event, notice)
    auth.login(Role.AGENT)
    page = client.get(f"/mailings/{mailing.id}/preview?customer={person.id}").get_data(
        as_text=True)
    paths = _unsubscribe_paths(page)  # the HTML link and the one in the plain-text part
    assert paths and unsubscribe_token(person.id) not in page
    anonymous = app.test_client()  # what a click from the preview does
    for path in paths:
        assert "This is a preview" in anonymous.get(path).get_data(as_text=True)
        response = anonymous.post(path, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200 and "Nobody was unsubscribed" in response.text
    db.session.expire_all()
    assert db.session.get(Customer, person.id).unsubscribed_at is None
    assert not _unsubscribed_anyone()


@pytest.mark.integration
def test_a_test_send_carries_an_inert_one_click_unsubscribe(app, users, scenario, client, auth,
                                                            smtp, run_worker) -> None:
    event, notice = scenario
    [person] = add_customers(users, event, 1)
    mailing = draft(users, event, notice)
    handler = smtp()
    auth.login(Role.AGENT)
    client.post(f"/mailings/{mailing.id}/test", data={"customer": person.id})
    run_worker()
    [message] = read_messages(handler.directory)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header = _unsubscribe_paths(str(message["List-Unsubscribe"]))
    bodies = "".join(message.get_body((kind,)).get_content() for kind in ("plain", "html"))
    assert header and unsubscribe_token(person.id) not in bodies
    mail_client = app.test_client()  # a mail client's automatic one-click unsubscribe
    for path in header | _unsubscribe_paths(bodies):
        response = mail_client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200 and "Nobody was unsubscribed" in response.text
    db.session.expire_all()
    assert db.session.get(Customer, person.id).unsubscribed_at is None
    assert not _unsubscribed_anyone()


def test_unsubscribe_links_survive_a_secret_key_rotation(app, users, scenario, client) -> None:
    event, _notice = scenario
    [person] = add_customers(users, event, 1)
    sent_before = unsubscribe_token(person.id)
    app.config.update(SECRET_KEY="the-new-key", SECRET_KEY_FALLBACKS=["test-secret"])
    assert customer_for_token(sent_before).id == person.id
    assert client.post(f"/unsubscribe/{sent_before}").status_code == 200
    db.session.expire_all()
    assert db.session.get(Customer, person.id).unsubscribed_at is not None
    new = unsubscribe_token(person.id)
    assert new != sent_before  # signed with the new key…
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert customer_for_token(new).id == person.id
    assert customer_for_token(sent_before) is None  # …and a retired key is refused


# ----------------------------------------------------------------------------- staff pages

@pytest.mark.integration
def test_compose_preview_test_send_start_and_report(app, users, scenario, client, auth, smtp,
                                                   run_worker) -> None:
    event, notice = scenario
    people = add_customers(users, event, 4, tags="vip")
    handler = smtp()
    auth.login(Role.AGENT)
    form = client.get(f"/mailings/event/{event.id}/new").get_data(as_text=True)
    assert notice.ref in form and "vip" in form
    count = client.get(f"/mailings/event/{event.id}/audience?tags=vip").get_data(as_text=True)
    assert "<strong>4</strong>" in count
    bad = client.post(f"/mailings/event/{event.id}/new", data={
        "version_id": notice.latest_version.id, "greeting_zh": "{{ nope }}", "greeting_en": ""})
    assert bad.status_code == 422 and "greeting_zh-error" in bad.get_data(as_text=True)
    assert db.session.scalar(select(Mailing.id)) is None
    response = client.post(f"/mailings/event/{event.id}/new", data={
        "version_id": notice.latest_version.id, "tags": ["vip"], "greeting_zh": "您好 {{ name }}",
        "greeting_en": "Hello {{ name }}"})
    assert response.status_code == 302
    mailing = db.session.scalar(select(Mailing))
    detail = client.get(f"/mailings/{mailing.id}").get_data(as_text=True)
    assert "Send to 4 customers" in detail
    preview = client.get(f"/mailings/{mailing.id}/preview?customer={people[1].id}",
                         headers={"HX-Request": "true", "HX-Target": "preview"})
    assert f"您好 {people[1].name}" in preview.get_data(as_text=True)
    client.post(f"/mailings/{mailing.id}/test", data={"customer": people[1].id})
    run_worker()
    [test_message] = read_messages(handler.directory)
    assert test_message["To"] == users[Role.AGENT].email
    assert test_message["Subject"].startswith("[TEST] ")
    assert client.post(f"/mailings/{mailing.id}/start").status_code == 302
    progress = client.get(f"/mailings/{mailing.id}/progress").get_data(as_text=True)
    assert "every 1s" in progress and 'data-percent="0"' in progress
    run_worker()
    progress = client.get(f"/mailings/{mailing.id}/progress").get_data(as_text=True)
    assert "every 1s" not in progress and 'data-percent="100"' in progress
    report = client.get(f"/mailings/{mailing.id}/report.csv").get_data(as_text=True)
    lines = report.strip().splitlines()
    assert len(lines) == 5 and all(",sent,1," in line for line in lines[1:])


def test_legal_can_read_but_not_send(app, users, scenario, client, auth) -> None:
    event, notice = scenario
    add_customers(users, event, 1)
    mailing = draft(users, event, notice)
    auth.login(Role.LEGAL)
    assert client.get(f"/mailings/{mailing.id}").status_code == 200
    assert client.post(f"/mailings/{mailing.id}/start").status_code == 403
    assert db.session.get(Mailing, mailing.id).status == "draft"


def test_recipient_rows_are_unique_per_customer(app, users, scenario) -> None:
    from sqlalchemy.exc import IntegrityError

    event, notice = scenario
    [person] = add_customers(users, event, 1)
    mailing = draft(users, event, notice)
    mailings.start(mailing, actor=users[Role.AGENT])
    db.session.add(MailingRecipient(mailing_id=mailing.id, customer_id=person.id,
                                    email=person.email, locale="en",
                                    status=RecipientStatus.PENDING))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()



def test_a_withdrawn_notice_is_not_mailed_and_its_mailings_stop(app, users, scenario) -> None:
    event, notice = scenario
    add_customers(users, event, 2)
    waiting = draft(users, event, notice)
    sending = draft(users, event, notice)
    mailings.start(sending, actor=users[Role.AGENT])
    publishing.withdraw(notice, reason="Wrong figures", hide=True, actor=users[Role.ADMIN])
    assert db.session.get(Mailing, waiting.id).status == "cancelled"
    assert db.session.get(Mailing, sending.id).status == "cancelled"
    assert mailings.progress(sending).counts["cancelled"] == 2
    with pytest.raises(RuleViolation, match="withdrawn"):
        draft(users, event, notice)


def test_a_mailing_starts_once(app, users, scenario) -> None:
    """Two requests read the draft, the first starts it: the second's conditional update
    finds no draft and adds nothing (no duplicate recipient rows, no 500)."""
    from sqlalchemy.orm.attributes import set_committed_value

    event, notice = scenario
    add_customers(users, event, 2)
    mailing = draft(users, event, notice)
    mailings.start(mailing, actor=users[Role.AGENT])
    db.session.commit()  # the first request's boundary
    set_committed_value(mailing, "status", "draft")  # the second request's stale view
    with pytest.raises(RuleViolation, match="already been started"):
        mailings.start(mailing, actor=users[Role.AGENT])
    db.session.rollback()  # the second request's boundary
    assert db.session.scalar(select(func.count(MailingRecipient.id))) == 2
    assert db.session.get(Mailing, mailing.id).status == "sending"
