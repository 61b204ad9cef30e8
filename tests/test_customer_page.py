"""The customer page (/my): notices and cases in plain words in the customer's language, a
reply that lands on the case (audited, the assignee told, shown to staff in order), the
personal link in real mailing and reply e-mails, and bad input answered with a page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import services as cases
from portal.cases.models import CaseNote
from portal.customers.links import CustomerLink
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from portal.models import text_digest
from portal.notifications.models import Notification, NotificationKind
from tests.case_helpers import make_case, make_customer, second_agent
from tests.customer_helpers import open_page
from tests.mail_helpers import recipients_received
from tests.test_mailings import draft, start
from tests.test_page_language import foreign_words, visible_texts


def _paid_case(users, customer):
    case = make_case(users, customer=customer, amount="80.00", order_ref="WD-PAID")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    cases.approve(case, actor=second_agent())
    cases.record_payment(case, amount=case.amount, payout_ref="PAY-4711", actor=users[Role.AGENT])
    return case


def test_the_page_shows_notices_and_cases_in_plain_words(app, users, scenario, client) -> None:
    event, _notice = scenario
    customer = make_customer(users, event=event)
    open_case = make_case(users, customer=customer, amount="1280.50", order_ref="WD-OPEN")
    paid = _paid_case(users, customer)
    cases.change_status(open_case, "start", actor=users[Role.AGENT])
    open_page(client, customer)
    zh = client.get("/my").get_data(as_text=True)
    assert "<html lang=\"zh-CN\">" in zh  # the customer's language first
    assert open_case.ref in zh and paid.ref in zh and "1280.50" in zh and "CNY" in zh
    assert "审核中" in zh and "已支付" in zh
    assert "PAY-4711" in zh and "我们承诺处理期限" in zh
    assert "Awaiting legal sign-off" not in zh and "in_progress" not in zh
    assert "CRM 系统故障通知" in zh  # the event's notice, by its Chinese title
    assert foreign_words("zh-CN", " ".join(visible_texts(zh, "zh-CN"))) == []
    # The switch stays under /my and keeps the session.
    response = client.post("/my/language", data={"locale": "en"})
    assert response.status_code == 303 and response.headers["Location"] == "/my"
    en = client.get("/my").get_data(as_text=True)
    assert "<html lang=\"en\">" in en and "Being reviewed" in en and "Payment reference" in en
    assert foreign_words("en", " ".join(visible_texts(en, "en"))) == []
    assert client.get("/my/check").status_code == 200


def test_a_reply_lands_on_the_case_audited_notified_and_shown_to_staff_in_order(
        app, users, client, auth, mail_server, run_worker) -> None:
    agent = users[Role.AGENT]
    agent.notify_by_email = True
    customer = make_customer(users)
    case = make_case(users, customer=customer)
    cases.add_reply(case, "我们正在处理。", actor=agent)
    cases.add_note(case, "Internal: check the bank file.", actor=agent)
    customer_client = app.test_client()
    open_page(customer_client, customer)
    response = customer_client.post(f"/my/cases/{case.id}/reply",
                                    data={"body": "我的账户已更换，请联系我。"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/my#case-{case.ref}"
    db.session.expire_all()
    note = db.session.scalar(select(CaseNote).where(CaseNote.kind == "customer"))
    assert note.case_id == case.id and note.author_id is None
    entry = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "case.customer_message"))
    assert entry.actor_label == f"customer:{customer.id}" and entry.actor_id is None
    assert entry.after["body_sha256"] == text_digest("我的账户已更换，请联系我。")
    assert "账户" not in repr(entry.after) + entry.summary
    [row] = db.session.scalars(select(Notification).where(
        Notification.kind == NotificationKind.CUSTOMER_MESSAGE)).all()
    assert row.recipient_id == agent.id
    run_worker()
    told = [m for m in mail_server() if m["To"] == agent.email]
    assert told and case.ref in told[0].get_content() and "账户" not in told[0].get_content()
    # The customer sees the conversation without the internal note.
    page = customer_client.get("/my").get_data(as_text=True)
    assert "我们正在处理" in page and "我的账户已更换" in page and "bank file" not in page
    # Staff: the conversation in order, the internal note apart.
    auth.login(Role.AGENT)
    staff = client.get(f"/cases/{case.id}").get_data(as_text=True)
    conversation = staff[staff.index('id="conversation"'):staff.index('id="notes"')]
    assert conversation.index("我们正在处理") < conversation.index("我的账户已更换")
    assert "bank file" not in conversation and "from the customer" in conversation
    assert "bank file" in staff[staff.index('id="notes"'):]
    # And the staff customer page's timeline shows what the customer did.
    timeline = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    timeline = timeline[timeline.index('id="customer-timeline"'):]
    [action] = re.findall(r'<li class="entry-customer_action">.*?</li>', timeline, re.S)[:1]
    assert "Customer message on" in action and case.ref in action
    assert "by the customer" in action


@pytest.fixture
def mail_server(app, smtp_server):
    app.config.update(SMTP_HOST=smtp_server["host"], SMTP_PORT=smtp_server["port"],
                      NOTIFY_DIGEST_SECONDS=0)
    return lambda: read_messages(smtp_server["dir"])


def test_an_empty_or_oversized_reply_is_told_by_the_field(app, users, client) -> None:
    customer = make_customer(users)
    case = make_case(users, customer=customer)
    open_page(client, customer)
    empty = client.post(f"/my/cases/{case.id}/reply", data={"body": "  "})
    assert empty.status_code == 422 and "请填写留言内容" in empty.get_data(as_text=True)
    long = client.post(f"/my/cases/{case.id}/reply", data={"body": "x" * 5001})
    assert long.status_code == 422 and "最多 5000 个字符" in long.get_data(as_text=True)
    assert db.session.scalar(select(CaseNote).where(CaseNote.kind == "customer")) is None


def test_a_20_mb_body_gets_a_page_in_the_customers_language(app, users, client) -> None:
    customer = make_customer(users)
    case = make_case(users, customer=customer)
    open_page(client, customer)
    big = b"{" + b'"a":"' + b"x" * (20 * 1024 * 1024) + b'"}'
    for path in (f"/my/cases/{case.id}/reply", "/my/check"):
        response = client.post(path, data=big, content_type="application/json",
                               headers={"Origin": "http://localhost"})
        body = response.get_data(as_text=True)
        assert response.status_code == 413, path
        assert "您发送的内容过大" in body and "Traceback" not in body
    form = client.post(f"/my/cases/{case.id}/reply", data={"body": "x" * (20 * 1024 * 1024)})
    assert form.status_code == 413


def test_every_customer_post_needs_its_csrf_token(app_factory, users) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    with app.app_context():
        customer = make_customer(users)
        case = make_case(users, customer=customer)
        open_page(client, customer)
        for path, data in ((f"/my/cases/{case.id}/reply", {"body": "hi"}),
                           ("/my/language", {"locale": "en"}), ("/my/leave", {})):
            response = client.post(path, data=data)
            assert response.status_code == 400, path
            assert "页面打开时间过长" in response.get_data(as_text=True)
        page = client.get("/my").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        sent = client.post(f"/my/cases/{case.id}/reply", data={"body": "hi",
                                                               "csrf_token": token})
        assert sent.status_code == 302
        assert db.session.scalar(select(CaseNote).where(CaseNote.kind == "customer"))


def test_too_many_replies_get_a_page_that_says_so(app_factory, users) -> None:
    app = app_factory(MY_REPLY_LIMIT="2/hour")
    client = app.test_client()
    with app.app_context():
        customer = make_customer(users)
        case = make_case(users, customer=customer)
        open_page(client, customer)
        codes = [client.post(f"/my/cases/{case.id}/reply", data={"body": f"m{i}"}).status_code
                 for i in range(3)]
        last = client.post(f"/my/cases/{case.id}/reply", data={"body": "again"})
    assert codes == [302, 302, 429]
    assert "短时间内请求过多" in last.get_data(as_text=True)


def _link_in(text: str) -> str:
    found = re.search(r"https?://[^\s)]+/my/([A-Za-z0-9_-]{40,})", text)
    assert found, text
    return found.group(1)


def test_a_mailing_message_carries_a_personal_link_outside_the_approved_text(
        app, users, scenario, smtp, run_worker, client) -> None:
    event, notice = scenario
    handler = smtp()
    customer = make_customer(users, event=event, email="wang@example.com")
    mailing = draft(users, event, notice)
    start(users, mailing)
    run_worker()
    [message] = read_messages(handler.directory)
    text = message.get_body(("plain",)).get_content()
    approved, footer = text.split("\n--\n", 1)
    assert "/my/" not in approved  # the approved text and greeting stay as they were
    token = _link_in(footer)
    html = message.get_body(("html",)).get_content()
    assert token in html and html.index("<hr>") < html.index(token)
    link = db.session.scalar(select(CustomerLink))
    assert link.customer_id == customer.id and link.sent_with == f"mailing:{mailing.id}"
    assert client.get(f"/my/{token}").status_code == 303
    assert "王芳" in client.get("/my").get_data(as_text=True)


def test_a_case_reply_carries_a_personal_link(app, users, smtp, run_worker, client) -> None:
    handler = smtp()
    customer = make_customer(users, email="wang@example.com")
    case = make_case(users, customer=customer)
    note = cases.add_reply(case, "您的退款已批准。", actor=users[Role.AGENT])
    db.session.commit()
    from portal.cases import tasks as case_tasks

    assert case_tasks.queue_reply(note.id)
    run_worker()
    assert recipients_received(handler.directory) == {"wang@example.com": 1}
    [message] = read_messages(handler.directory)
    text = message.get_content()
    assert "您的退款已批准。" in text
    token = _link_in(text.split("\n--\n", 1)[1])
    assert db.session.scalar(select(CustomerLink)).sent_with == f"reply:{note.id}"
    assert client.get(f"/my/{token}").status_code == 303
    assert case.ref in client.get("/my").get_data(as_text=True)


def test_a_test_send_carries_no_customers_link(app, users, scenario, smtp, run_worker,
                                              client, auth) -> None:
    from portal.mailings import services as mailings

    event, notice = scenario
    handler = smtp()
    customer = make_customer(users, event=event)
    mailing = draft(users, event, notice)
    mailings.request_test(mailing, customer, actor=users[Role.AGENT])
    db.session.commit()
    from portal.mailings import tasks as mailing_tasks

    mailing_tasks.requeue_lost_tests(timedelta(0))
    run_worker()
    [message] = read_messages(handler.directory)
    assert "/my/preview" in message.get_body(("plain",)).get_content()
    assert db.session.scalar(select(CustomerLink)) is None


def test_the_demo_seed_prints_a_link_that_opens_the_demo_customers_page(app, client) -> None:
    from portal.main.cli import seed_demo
    from tests.crawl_data import customer_link, demo_credentials

    text = seed_demo()
    assert set(demo_credentials(text)) == set(Role)
    link = customer_link(text)
    assert link.startswith("http://127.0.0.1:5000/my/")
    assert client.get(link.removeprefix("http://127.0.0.1:5000")).status_code == 303
    page = client.get("/my").get_data(as_text=True)
    assert "王芳" in page and "PAY-DEMO-0001" in page and "请问赔偿款什么时候到账" in page
