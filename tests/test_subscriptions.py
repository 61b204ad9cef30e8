"""Public subscriptions: subscribe → confirm → a publication reaches the subscriber in their
language → one-click unsubscribe, all through a real SMTP server and a real RQ worker; the
same answer for known and new addresses; rate limits in the real Redis; the one-time code;
approved versions only; expiry, erasure and retention; the staff figures."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from portal import jobs, uow
from portal.accounts import Role
from portal.customers.models import Customer
from portal.extensions import db
from portal.lifecycle import erasure
from portal.mail.devsmtp import read_messages
from portal.models import utcnow
from portal.notices import publishing
from portal.notices import services as notices
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from portal.subscriptions import services as subscriptions
from portal.subscriptions import tasks
from portal.subscriptions.models import (
    Subscription,
    SubscriptionDelivery,
    SubscriptionStatus,
)
from tests.case_helpers import make_customer
from tests.notice_helpers import EN, ZH, make_notice
from tests.notice_helpers import publish as publish_notice

SITE = {"Origin": "http://localhost"}


@pytest.fixture
def notice(scenario):
    event, notice = scenario
    event.public_title_zh, event.public_title_en = "CRM 系统故障", "CRM outage"
    db.session.commit()
    return notice


@pytest.fixture
def mail(app, smtp_server):
    app.config.update(SMTP_HOST=smtp_server["host"], SMTP_PORT=smtp_server["port"],
                      SUBSCRIPTION_ANSWER_SECONDS=0.0)
    return smtp_server["dir"]


def _subscribe(client, email, *, locale="en", event_id=None, ip="10.0.0.1", lang="en",
               headers=SITE):
    return client.post(f"/subscribe?lang={lang}", headers=headers,
                       data={"email": email, "locale": locale, "event": event_id or ""},
                       environ_base={"REMOTE_ADDR": ip})


def _path(url: str) -> str:
    return "/" + url.split("//", 1)[1].split("/", 1)[1]


def _link(message, kind: str) -> str:
    return re.search(rf"http\S+/subscriptions/{kind}\S+", message.get_content()).group(0)


def _new_version(notice, users, content) -> None:
    notices.save(notice, content=content, audience="public", planned_publish_at=None,
                 based_on=notice.latest_version.id, actor=users[Role.AGENT])
    publish_notice(notice, users)
    db.session.commit()


def _parts(message) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


@pytest.mark.integration
def test_subscribe_confirm_receive_and_unsubscribe_through_a_real_mail_server(
        client, notice, users, mail, run_worker) -> None:
    # Two readers: one of this event in English, one of all notices in Chinese.
    answer = _subscribe(client, "reader@example.net", locale="en", event_id=notice.event_id)
    assert answer.status_code == 200 and "Check your e-mail" in answer.text
    assert _subscribe(client, "duzhe@example.cn", locale="zh_CN", lang="zh_CN",
                      ip="10.0.0.2").status_code == 200
    run_worker()
    confirm_en, confirm_zh = read_messages(mail)
    assert confirm_en["To"] == "reader@example.net"
    assert confirm_en["Subject"] == "Confirm your subscription"
    assert confirm_zh["Subject"] == "请确认您的订阅"
    for message in (confirm_en, confirm_zh):
        path = _path(_link(message, "confirm"))
        asked = client.get(path)
        assert asked.status_code == 200 and 'method="post"' in asked.text
        assert client.post(path).status_code == 200
    rows = db.session.scalars(select(Subscription).order_by(Subscription.id)).all()
    assert [r.status for r in rows] == [SubscriptionStatus.ACTIVE] * 2

    # An update is published: each subscriber gets it once, in their language.
    _new_version(notice, users, {"zh_CN": {**ZH, "title": "CRM 故障更新"},
                                 "en": {**EN, "title": "CRM outage update"}})
    run_worker()
    to_en, to_zh = sorted(read_messages(mail)[2:], key=lambda m: m["To"])[::-1]
    assert to_en["To"] == "reader@example.net" and to_en["Subject"] == "CRM outage update"
    assert to_zh["To"] == "duzhe@example.cn" and to_zh["Subject"] == "CRM 故障更新"
    text, html = _parts(to_en)
    assert "For withdrawals call 400-800-1234" in text and "<strong>400-800-1234</strong>" in html
    assert "you subscribed to the notices about “CRM outage”" in text
    assert "出金申请请致电" in _parts(to_zh)[0]
    assert to_en["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = to_en["List-Unsubscribe"].strip("<>")

    # One click (RFC 8058) from the mail client: no CSRF token, no cookie.
    done = client.post(_path(one_click), data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    db.session.expire_all()
    assert db.session.get(Subscription, rows[0].id).status == SubscriptionStatus.UNSUBSCRIBED
    _new_version(notice, users, {"zh_CN": {**ZH, "title": "CRM 已恢复"},
                                 "en": {**EN, "title": "CRM restored"}})
    run_worker()
    [last] = read_messages(mail)[4:]
    assert last["To"] == "duzhe@example.cn" and last["Subject"] == "CRM 已恢复"


@pytest.mark.integration
def test_a_missing_language_falls_back_to_the_other(client, users, notice, mail,
                                                     run_worker) -> None:
    subscriptions.subscribe("solo@example.net", None, "en")
    subscriptions.confirm(db.session.scalar(select(Subscription)))
    only_zh = make_notice(users, notice.event, content={"zh_CN": ZH})
    publish_notice(only_zh, users)
    db.session.commit()
    run_worker()
    message = read_messages(mail)[-1]
    assert message["Subject"] == ZH["title"]
    text, _html = _parts(message)
    assert "This notice has no English text; the Chinese text follows." in text
    assert "Change the language or unsubscribe" in text


def test_only_what_legal_approved_reaches_subscribers(client, users, notice) -> None:
    subscriptions.subscribe("solo@example.net", None, "en")
    subscriptions.confirm(db.session.scalar(select(Subscription)))
    urgent = make_notice(users, notice.event)
    publishing.emergency_publish(urgent, reason="Phones down", actor=users[Role.ADMIN])
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(SubscriptionDelivery)) == 0
    # Legal's review after the fact approves it: now it goes out.
    review = db.session.scalar(select(SignoffRequest).where(
        SignoffRequest.subject_id == urgent.published_version_id, SignoffRequest.retroactive))
    signoffs.decide(review.id, "approved", "", actor=users[Role.LEGAL])
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(SubscriptionDelivery)) == 1
    _new_version(notice, users, {"en": {**EN, "title": "Approved update"}})
    assert db.session.scalar(select(func.count()).select_from(SubscriptionDelivery)) == 2


def test_known_and_new_addresses_get_the_same_answer_in_the_same_time(app, client,
                                                                      notice) -> None:
    app.config["SUBSCRIPTION_ANSWER_SECONDS"] = 0.3
    subscriptions.subscribe("known@example.net", notice.event_id, "en")
    subscriptions.confirm(db.session.scalar(select(Subscription)))
    db.session.commit()
    answers = []
    for n, email in enumerate(["known@example.net", "new@example.net"]):
        started = time.monotonic()
        answer = _subscribe(client, email, event_id=notice.event_id, ip=f"10.0.1.{n}")
        answers.append((answer.status_code, answer.data, time.monotonic() - started))
    (status_a, body_a, took_a), (status_b, body_b, took_b) = answers
    assert (status_a, body_a) == (status_b, body_b) and status_a == 200
    assert took_a >= 0.3 and took_b >= 0.3 and abs(took_a - took_b) < 0.15
    # The known subscriber is told so (by e-mail, by the job); nothing changed for them.
    known = db.session.scalar(select(Subscription).where(Subscription.email == "known@example.net"))
    assert known.status == SubscriptionStatus.ACTIVE and known.mail == "already"


def test_the_form_must_come_from_this_site_and_bad_input_is_named(client, notice) -> None:
    assert _subscribe(client, "x@example.net", headers={}).status_code == 400
    bad = _subscribe(client, "not-an-address", lang="zh_CN")
    assert bad.status_code == 422 and 'id="subscribe-email-error"' in bad.text
    assert "请输入电子邮箱地址" in bad.text
    unknown_event = _subscribe(client, "x@example.net", event_id=99999)
    assert unknown_event.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0


def test_subscriptions_are_rate_limited_per_address_and_per_ip(app_factory, users) -> None:
    app = app_factory(SUBSCRIBE_LIMIT_PER_IP="3 per hour", SUBSCRIBE_LIMIT_PER_ADDRESS="2 per hour",
                      SUBSCRIPTION_ANSWER_SECONDS=0.0)
    with app.app_context():
        client = app.test_client()
        for ip in ("10.2.0.1", "10.2.0.2"):
            assert _subscribe(client, "same@example.net", ip=ip).status_code == 200
        limited = _subscribe(client, "same@example.net", ip="10.2.0.3", lang="zh_CN")
        assert limited.status_code == 429 and "请求过于频繁" in limited.text
        for n in range(3):
            assert _subscribe(client, f"a{n}@example.net", ip="10.2.0.9").status_code == 200
        assert _subscribe(client, "a3@example.net", ip="10.2.0.9").status_code == 429
        assert db.session.scalar(select(func.count()).select_from(Subscription)) == 4


@pytest.mark.integration
def test_managing_needs_the_emailed_one_time_code(client, notice, mail, run_worker) -> None:
    subscriptions.subscribe("owner@example.net", notice.event_id, "en")
    row = db.session.scalar(select(Subscription))
    subscriptions.confirm(row)
    row.mail = None
    db.session.commit()
    # Known and unknown addresses: the same page; only the known one gets a code.
    known = client.post("/subscriptions/manage?lang=en", data={"email": "owner@example.net"},
                        environ_base={"REMOTE_ADDR": "10.3.0.1"})
    unknown = client.post("/subscriptions/manage?lang=en", data={"email": "nobody@example.net"},
                          environ_base={"REMOTE_ADDR": "10.3.0.2"})
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace("owner@example.net", "X") == \
        unknown.text.replace("nobody@example.net", "X")
    run_worker()
    [message] = read_messages(mail)
    assert message["To"] == "owner@example.net"
    code = re.search(r"\b(\d{6})\b", message["Subject"]).group(1)
    stored = db.session.scalar(select(subscriptions.SubscriptionCode))
    assert stored.code_hash and code not in stored.code_hash  # kept as a keyed digest

    def redeem(value: str):
        return client.post("/subscriptions/manage/code?lang=en",
                           data={"email": "owner@example.net", "code": value})

    wrong = redeem("000000" if code != "000000" else "111111")
    assert wrong.status_code == 422 and "This code is wrong" in wrong.text
    right = redeem(code)
    assert right.status_code == 200 and "CRM outage" in right.text
    link = re.search(r'href="(/subscriptions/[^"/?]+)\?lang=en"', right.text).group(1)
    assert redeem(code).status_code == 422  # once only
    changed = client.post(f"{link}?lang=en", data={"locale": "zh_CN", "event": ""})
    assert changed.status_code == 200
    db.session.expire_all()
    row = db.session.get(Subscription, row.id)
    assert (row.locale, row.scope, row.event_id) == ("zh_CN", "all", None)


def test_a_code_allows_a_few_attempts_and_expires(app, client, notice) -> None:
    subscriptions.subscribe("owner@example.net", None, "en")
    subscriptions.confirm(db.session.scalar(select(Subscription)))
    subscriptions.request_code("owner@example.net", "en")
    code = subscriptions.issue_code(db.session.scalar(select(subscriptions.SubscriptionCode)))
    db.session.commit()
    wrong = "1" * 6 if code != "1" * 6 else "2" * 6
    for _ in range(app.config["SUBSCRIPTION_CODE_ATTEMPTS"]):
        assert subscriptions.redeem_code("owner@example.net", wrong) is None
    assert subscriptions.redeem_code("owner@example.net", code) is None  # too many tries
    code = subscriptions.issue_code(db.session.scalar(select(subscriptions.SubscriptionCode)))
    db.session.execute(update(subscriptions.SubscriptionCode).values(
        expires_at=utcnow() - timedelta(seconds=1)))
    assert subscriptions.redeem_code("owner@example.net", code) is None


def test_the_signed_link_manages_and_a_forged_one_does_not(client, notice) -> None:
    subscriptions.subscribe("owner@example.net", notice.event_id, "zh_CN")
    row = db.session.scalar(select(Subscription))
    subscriptions.confirm(row)
    token = subscriptions.manage_token(row)
    db.session.commit()
    page = client.get(f"/subscriptions/{token}")
    assert page.status_code == 200 and "您的订阅" in page.text
    assert client.get(f"/subscriptions/{token[:-2]}xx").status_code == 404
    assert client.get(f"/subscriptions/{token}/unsubscribe").status_code == 200  # asks only
    db.session.expire_all()
    assert db.session.get(Subscription, row.id).status == SubscriptionStatus.ACTIVE


def test_unconfirmed_subscriptions_expire_and_are_purged(client, notice) -> None:
    subscriptions.subscribe("late@example.net", None, "en")
    row = db.session.scalar(select(Subscription))
    token = subscriptions.confirmation_token(row)
    db.session.execute(update(Subscription).values(expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    assert tasks.services.purge() == 1
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0
    gone = client.get(f"/subscriptions/confirm/{token}?lang=zh_CN")
    assert gone.status_code == 404 and "此链接无效" in gone.text


def test_erasure_of_a_person_removes_their_subscriptions(users, notice) -> None:
    customer = make_customer(users, ref="E-1", event=notice.event, email="Gone@Example.net")
    subscriptions.subscribe("gone@example.net", None, "en")
    subscriptions.subscribe("stays@example.net", None, "en")
    db.session.commit()
    erasure.erase_on_request(db.session.get(Customer, customer.id), "asked",
                             actor=users[Role.ADMIN])
    db.session.commit()
    assert db.session.scalars(select(Subscription.email)).all() == ["stays@example.net"]


def test_staff_see_counts_per_event_and_language(client, auth, notice) -> None:
    for email, locale, event_id in [("a@x.net", "en", notice.event_id),
                                    ("b@x.net", "zh_CN", notice.event_id),
                                    ("c@x.net", "zh_CN", notice.event_id),
                                    ("d@x.net", "en", None)]:
        subscriptions.subscribe(email, event_id, locale)
    for row in db.session.scalars(select(Subscription)).all()[:3]:
        subscriptions.confirm(row)
    counts = subscriptions.counts(notice.event_id)
    assert counts.event == {"zh_CN": 2, "en": 1} and counts.everything == {"zh_CN": 0, "en": 0}
    db.session.commit()
    auth.login(Role.AGENT)
    page = client.get(f"/events/{notice.event_id}/subscribers")
    assert page.status_code == 200 and "a@x.net" not in page.text
    assert f'href="/events/{notice.event_id}/subscribers"' in client.get(
        f"/events/{notice.event_id}").text


def test_retention_drops_ended_and_the_events_subscriptions(app, notice) -> None:
    for email, event_id in [("old@x.net", None), ("recent@x.net", None),
                            ("event@x.net", notice.event_id), ("all@x.net", None)]:
        subscriptions.subscribe(email, event_id, "en")
    rows = {r.email: r for r in db.session.scalars(select(Subscription))}
    for row in rows.values():
        subscriptions.confirm(row)
    subscriptions.unsubscribe(rows["old@x.net"], via="one-click")
    subscriptions.unsubscribe(rows["recent@x.net"], via="one-click")
    keep = app.config["SUBSCRIPTION_KEEP_UNSUBSCRIBED_DAYS"]
    db.session.execute(update(Subscription).where(Subscription.email == "old@x.net").values(
        unsubscribed_at=utcnow() - timedelta(days=keep + 1)))
    assert subscriptions.purge() == 1
    assert subscriptions.drop_for_event(notice.event_id) == 1
    db.session.commit()
    assert sorted(db.session.scalars(select(Subscription.email))) == ["all@x.net",
                                                                      "recent@x.net"]


@pytest.mark.integration
def test_deliveries_survive_an_emptied_redis(app, users, notice, mail, run_worker) -> None:
    from redis import Redis

    subscriptions.subscribe("kept@example.net", notice.event_id, "en")
    row = db.session.scalar(select(Subscription))
    subscriptions.confirm(row)
    row.mail = None
    _new_version(notice, users, {"en": {**EN, "title": "Still delivered"}})
    uow.commit()  # the deliveries' job is queued now
    assert jobs.job_is_known(tasks.delivery_job_id(notice.published_version_id))
    Redis.from_url(app.config["REDIS_URL"]).flushall()  # the queued job is lost
    run_worker()
    assert read_messages(mail) == []
    assert tasks.requeue_lost_subscription_mails(timedelta(0)) == 1
    run_worker()
    [message] = read_messages(mail)
    assert message["Subject"] == "Still delivered" and message["To"] == "kept@example.net"
    delivery = db.session.scalar(select(SubscriptionDelivery))
    assert delivery.status == "sent" and message["Message-ID"].startswith(
        f"<subscription-{delivery.id}@")
    run_worker()  # a second run sends nothing again
    assert len(read_messages(mail)) == 1
