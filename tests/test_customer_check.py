""""Check my case": one answer and one timing for every input, a one-time link e-mailed only
on a match (real Redis, a real RQ worker, a real SMTP server), rate limits per client address
and per e-mail address (Flask-Limiter on the test Redis), and the form on notice pages."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from portal.audit.models import AuditEntry
from portal.customers.links import CustomerLink, LinkKind
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from tests.case_helpers import make_case, make_customer
from tests.mail_helpers import recipients_received

ORIGIN = {"Origin": "http://localhost"}


def ask(client, email: str, ref: str, event_id: int | None = None, **headers):
    data = {"email": email, "ref": ref}
    if event_id:
        data["event"] = str(event_id)
    return client.post("/my/check", data=data, headers={**ORIGIN, **headers})


@pytest.fixture
def known(app, users):
    customer = make_customer(users, email="wang.fang@example.com")
    case = make_case(users, customer=customer, order_ref="WD-1")
    db.session.commit()
    return customer, case


def test_known_and_unknown_addresses_get_the_same_page_and_only_a_match_is_mailed(
        app, users, client, known, smtp, run_worker) -> None:
    app.config["MY_CHECK_SECONDS"] = 0.3
    handler = smtp()
    customer, case = known
    answers = {}
    timings = {}
    for label, email, ref in (("match", "Wang.Fang@example.com", "wd-1"),
                              ("case ref", "wang.fang@example.com", case.ref),
                              ("unknown address", "nobody@example.com", "WD-1"),
                              ("wrong ref", "wang.fang@example.com", "WD-2")):
        started = time.monotonic()
        response = ask(client, email, ref, customer.event_id)
        timings[label] = time.monotonic() - started
        answers[label] = (response.status_code, response.get_data(as_text=True))
    assert len(set(answers.values())) == 1, "the answer must not tell a match apart"
    assert answers["match"][0] == 200
    assert "If we have a case for you" in answers["match"][1]
    assert min(timings.values()) >= 0.3
    assert max(timings.values()) - min(timings.values()) < 0.15, timings
    run_worker()
    assert recipients_received(handler.directory) == {"wang.fang@example.com": 2}
    rows = db.session.scalars(select(CustomerLink)).all()
    assert len(rows) == 2 and all(r.kind == LinkKind.ONE_TIME for r in rows)
    assert all(r.mail_status == "sent" and r.token_hash for r in rows)
    message = read_messages(handler.directory)[0]
    text = message.get_body(("plain",)).get_content()
    url = re.search(r"https?://\S+/my/(\S+)", text)
    assert url and "30" in text
    token = url.group(1)
    assert token not in repr([(r.token_hash, r.sent_with) for r in rows])
    assert client.get(f"/my/{token}").status_code == 303
    assert client.get("/my").status_code == 200
    requested = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "customer.link_requested")).all()
    assert [e.actor_label for e in requested] == [f"customer:{customer.id}"] * 2
    assert "wang.fang" not in repr([(e.summary, e.after) for e in requested])


def test_an_event_that_does_not_offer_it_sends_nothing(app, users, client, known, smtp,
                                                        run_worker) -> None:
    handler = smtp()
    app.config["MY_CHECK_SECONDS"] = 0
    customer, _case = known
    customer.event.self_service = False
    db.session.commit()
    assert ask(client, customer.email, "WD-1").status_code == 200
    run_worker()
    assert recipients_received(handler.directory) == {}


def test_a_form_posted_from_another_site_is_refused(app, users, client, known) -> None:
    app.config.update(MY_CHECK_SECONDS=0, MY_CHECK_LIMIT_PER_ADDRESS="100/hour")
    customer, _case = known
    for headers in ({"Origin": "https://evil.example"}, {"Origin": ""},
                    {"Referer": "https://evil.example/page"}):
        response = client.post("/my/check", data={"email": customer.email, "ref": "WD-1"},
                               headers=headers)
        assert response.status_code == 400, headers
    assert db.session.scalar(select(CustomerLink)) is None
    same_site = client.post("/my/check", data={"email": customer.email, "ref": "WD-1"},
                            headers={"Referer": "http://localhost/notices/x"})
    assert same_site.status_code == 200


def test_bad_input_is_told_by_the_field(app, users, client) -> None:
    app.config["MY_CHECK_SECONDS"] = 0
    response = ask(client, "not-an-address", "", **{"Accept-Language": "zh-CN"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "请输入电子邮箱地址" in body and "请输入订单号或个案编号" in body


def test_too_many_requests_from_one_client_address(app_factory, users) -> None:
    app = app_factory(MY_CHECK_SECONDS=0, MY_CHECK_LIMIT_PER_IP="3/minute",
                      MY_CHECK_LIMIT_PER_ADDRESS="100/minute")
    client = app.test_client()
    with app.app_context():
        codes = [ask(client, f"p{i}@example.com", "X").status_code for i in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = ask(client, "p9@example.com", "X", **{"Accept-Language": "zh-CN"})
        assert refused.status_code == 429
        assert "短时间内请求过多" in refused.get_data(as_text=True)
        other = ask(client, "p9@example.com", "X", **{"X-Forwarded-For": "10.0.0.2"})
    assert other.status_code == 429  # without a trusted proxy the header is not believed


def test_the_client_address_comes_through_the_trusted_proxy(app_factory, users) -> None:
    app = app_factory(MY_CHECK_SECONDS=0, MY_CHECK_LIMIT_PER_IP="2/minute",
                      MY_CHECK_LIMIT_PER_ADDRESS="100/minute", PORTAL_TRUSTED_PROXIES=1)
    client = app.test_client()
    with app.app_context():
        first = [ask(client, f"a{i}@example.com", "X", **{"X-Forwarded-For": "203.0.113.1"})
                 .status_code for i in range(3)]
        second = ask(client, "b@example.com", "X", **{"X-Forwarded-For": "203.0.113.2"})
    assert first == [200, 200, 429] and second.status_code == 200


def test_too_many_requests_for_one_address(app_factory, users) -> None:
    app = app_factory(MY_CHECK_SECONDS=0, MY_CHECK_LIMIT_PER_IP="100/minute",
                      MY_CHECK_LIMIT_PER_ADDRESS="2/hour", PORTAL_TRUSTED_PROXIES=1)
    client = app.test_client()
    with app.app_context():
        codes = [ask(client, email, "X", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                 for i, email in enumerate(["Same@example.com", "same@example.com ",
                                            "SAME@example.com"])]
        other = ask(client, "other@example.com", "X", **{"X-Forwarded-For": "198.51.100.9"})
        body = client.post("/my/check", data={"email": "same@example.com", "ref": "X"},
                           headers={**ORIGIN, "X-Forwarded-For": "198.51.100.10"})
    assert codes == [200, 200, 429] and other.status_code == 200
    assert "Too many requests" in body.get_data(as_text=True)


def test_the_limits_are_kept_in_redis(app_factory, users, redis_url) -> None:
    from redis import Redis

    app = app_factory(MY_CHECK_SECONDS=0)
    with app.app_context():
        ask(app.test_client(), "k@example.com", "X")
    keys = [k.decode() for k in Redis.from_url(redis_url).keys("*aftercare-limit*")]
    assert keys, "the limits must be counted in the app's Redis"
    assert not any("k@example.com" in k for k in keys)  # the address only as a digest


def test_notice_pages_of_an_event_that_allows_it_offer_the_form(app, users, scenario,
                                                                client) -> None:
    event, notice = scenario
    page = client.get(f"/notices/{notice.slug}?lang=zh_CN").get_data(as_text=True)
    assert "查询我的赔付" in page and 'action="/my/check?lang=zh_CN"' in page
    assert f'name="event" value="{event.id}"' in page
    assert "csrf_token" not in page  # the page is cached for everyone
    event.self_service = False
    db.session.commit()
    from portal.public import cache

    cache.invalidate()
    assert "查询我的赔付" not in client.get(f"/notices/{notice.slug}?lang=zh_CN").get_data(
        as_text=True)


def test_admins_switch_it_in_the_event_form(app, users, scenario, client, auth) -> None:
    event, notice = scenario
    auth.login("admin")
    form = client.get(f"/events/{event.id}/edit").get_data(as_text=True)
    assert 'name="self_service"' in form and "checked" in form
    response = client.post(f"/events/{event.id}/edit", data={
        "title": event.title, "severity": event.severity, "cause": event.cause,
        "summary": event.summary})
    assert response.status_code == 302
    db.session.expire_all()
    assert event.self_service is False
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "event.update")
                              .order_by(AuditEntry.id.desc()))
    assert entry.before["self_service"] is True and entry.after["self_service"] is False
    page = client.get(f"/notices/{notice.slug}").get_data(as_text=True)
    assert "Check my case" not in page
