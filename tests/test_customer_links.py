"""Links to the customer page: random tokens stored only as hashes, scoped to one customer,
expiring, revocable, one-time links spent once; the session cookie a link opens; the staff
side (active links, revoking, the lifetime setting)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from sqlalchemy import select, text

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.customers import links
from portal.customers.links import CustomerLink, LinkKind
from portal.customers.session import COOKIE
from portal.extensions import db
from portal.lifecycle import erasure
from portal.models import utcnow
from tests.case_helpers import make_case, make_customer
from tests.customer_helpers import my_cookie, open_page, personal_token


def test_a_token_is_random_and_only_its_sha256_is_stored(app, users) -> None:
    customer = make_customer(users)
    token = personal_token(customer)
    other = personal_token(customer)
    assert token != other and len(token) >= 43  # 32 random bytes in URL-safe base64
    stored = db.session.execute(text("SELECT * FROM customer_link")).mappings().all()
    dump = repr(stored)
    assert token not in dump and other not in dump
    assert {row["token_hash"] for row in stored} == {
        hashlib.sha256(t.encode()).hexdigest() for t in (token, other)}


def test_following_a_link_sets_the_cookie_and_redirects_without_the_token(
        app, users, client) -> None:
    customer = make_customer(users)
    token = personal_token(customer)
    response = client.get(f"/my/{token}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/my"
    cookie = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "=")]
    assert len(cookie) == 1
    flags = cookie[0].lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/my;" in flags + ";"
    assert "secure" not in flags  # development; production below
    assert token not in cookie[0]
    assert "Max-Age=7200" in cookie[0]
    page = client.get("/my")
    assert page.status_code == 200 and "王芳" in page.get_data(as_text=True)
    assert token not in page.get_data(as_text=True)
    link = db.session.scalar(select(CustomerLink))
    assert link.last_used_at is not None
    entry = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "customer.link_followed"))
    assert entry.actor_label == f"customer:{customer.id}" and entry.actor_id is None
    assert "王芳" not in repr(entry.after) + entry.summary


def test_the_cookie_is_secure_in_production(app_factory, users) -> None:
    app = app_factory(PORTAL_ENV="production")
    with app.app_context():
        customer = make_customer(users)
        token = personal_token(customer)
        response = app.test_client().get(f"/my/{token}")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE))
    assert "Secure" in cookie


def test_the_cookie_is_sent_only_under_my(app, users, client) -> None:
    open_page(client, make_customer(users))
    assert my_cookie(client) is not None
    assert client.get_cookie(COOKIE, path="/") is None
    assert client.get_cookie(COOKIE, path="/cases/") is None


def test_without_a_session_the_page_asks_for_a_new_link(app, users, client) -> None:
    response = client.get("/my")
    assert response.status_code == 302 and response.headers["Location"].startswith("/my/check")
    assert "/login" not in response.headers["Location"]


def test_a_forged_cookie_opens_nothing(app, users, client) -> None:
    customer = make_customer(users)
    open_page(client, customer)
    value = my_cookie(client).value
    forged = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    client.set_cookie(COOKIE, forged, path="/my")
    assert client.get("/my").status_code == 302
    from itsdangerous import URLSafeTimedSerializer

    wrong_key = URLSafeTimedSerializer("not-the-secret", salt="aftercare.customer-session")
    client.set_cookie(COOKIE, wrong_key.dumps({"c": customer.id, "l": 1, "lang": "en",
                                               "t": 2**31}), path="/my")
    assert client.get("/my").status_code == 302


def test_unknown_and_forged_tokens_get_a_page_that_says_what_to_do(app, users, client) -> None:
    customer = make_customer(users)
    token = personal_token(customer)
    for bad in ("not-a-token", token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 300):
        response = client.get(f"/my/{bad}", headers={"Accept-Language": "zh-CN"})
        body = response.get_data(as_text=True)
        assert response.status_code == 404, bad
        assert "我们不认识此链接" in body and 'name="email"' in body
        assert "Traceback" not in body and "agent@example.com" not in body
    assert my_cookie(client) is None


def test_an_expired_link_is_refused_in_the_customers_language(app, users, client) -> None:
    customer = make_customer(users)  # zh_CN
    token = personal_token(customer)
    db.session.scalar(select(CustomerLink)).expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = client.get(f"/my/{token}", headers={"Accept-Language": "en"})
    assert response.status_code == 410
    assert "链接已过期" in response.get_data(as_text=True)
    assert my_cookie(client) is None


def test_a_new_link_lasts_the_admin_set_lifetime(app, users, client, auth) -> None:
    customer = make_customer(users)
    link, _token = links.issue_personal(customer, sent_with="test")
    assert abs(link.expires_at - link.created_at - timedelta(days=90)) < timedelta(seconds=1)
    auth.login(Role.ADMIN)
    refused = client.post("/customers/link-settings", data={"link_lifetime_days": "0"})
    assert refused.status_code == 422 and "between 1 and 366" in refused.get_data(as_text=True)
    assert client.post("/customers/link-settings",
                       data={"link_lifetime_days": "30"}).status_code == 302
    link, _token = links.issue_personal(customer, sent_with="test")
    assert abs(link.expires_at - link.created_at - timedelta(days=30)) < timedelta(seconds=1)
    entry = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "settings.link_lifetime"))
    assert entry.before == {"days": 90} and entry.after == {"days": 30}
    auth.logout()
    auth.login(Role.AGENT)
    assert client.get("/customers/link-settings").status_code == 403


def test_staff_see_active_links_and_revoking_one_ends_its_session(
        app, users, client, auth, app_factory) -> None:
    customer = make_customer(users)
    customer_client = app.test_client()
    open_page(customer_client, customer)
    link = db.session.scalar(select(CustomerLink))
    auth.login(Role.AGENT)
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert f"#{link.id}" in page and "Revoke" in page and "hx-confirm" in page
    response = client.post(f"/customers/links/{link.id}/revoke")
    assert response.status_code == 302
    db.session.expire_all()
    assert link.revoked_at is not None and link.revoked_by_id == users[Role.AGENT].id
    assert customer_client.get("/my").status_code == 302  # the session ended with it
    page = client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert "No link opens this customer" in page


def test_a_revoked_link_is_refused(app, users, client) -> None:
    customer = make_customer(users)
    token = personal_token(customer)
    links.revoke(db.session.scalar(select(CustomerLink)), actor=users[Role.AGENT])
    db.session.commit()
    response = client.get(f"/my/{token}")
    assert response.status_code == 410 and "撤销" in response.get_data(as_text=True)


def test_a_one_time_link_opens_the_page_once(app, users, client) -> None:
    customer = make_customer(users)
    link = links.request_one_time(customer)
    token = links.claim_one_time(link.id, timedelta(minutes=2))
    db.session.commit()
    assert link.kind == LinkKind.ONE_TIME
    assert client.get(f"/my/{token}").status_code == 303
    again = app.test_client().get(f"/my/{token}")
    assert again.status_code == 410 and "已被使用" in again.get_data(as_text=True)
    assert client.get("/my").status_code == 200  # the session it opened lives on


def test_a_one_time_link_expires_after_30_minutes(app, users, client) -> None:
    customer = make_customer(users)
    link = links.request_one_time(customer)
    assert abs(link.expires_at - link.created_at - timedelta(minutes=30)) < timedelta(seconds=1)
    token = links.claim_one_time(link.id, timedelta(minutes=2))
    link.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get(f"/my/{token}").status_code == 410


def test_a_link_opens_only_its_own_customers_page(app, users, client) -> None:
    mine = make_customer(users, ref="K-1", email="one@example.com")
    other = make_customer(users, ref="K-2", event=mine.event, email="two@example.com")
    own_case = make_case(users, customer=mine, order_ref="O-MINE")
    other_case = make_case(users, customer=other, order_ref="O-OTHER")
    open_page(client, mine)
    page = client.get("/my").get_data(as_text=True)
    assert own_case.ref in page and other_case.ref not in page
    response = client.post(f"/my/cases/{other_case.id}/reply", data={"body": "hello"})
    assert response.status_code == 404
    assert "O-OTHER" not in response.get_data(as_text=True)
    db.session.expire_all()
    assert [n for n in other_case.notes if n.kind == "customer"] == []


def test_erasing_the_customer_removes_their_links(app, users, client) -> None:
    customer = make_customer(users)
    token = open_page(client, customer)
    erasure.erase_on_request(customer, "asked", actor=users[Role.ADMIN])
    db.session.commit()
    assert db.session.scalar(select(CustomerLink)) is None
    assert client.get("/my").status_code == 302
    assert client.get(f"/my/{token}").status_code == 404


def test_the_session_ends_after_two_hours(app, users, client) -> None:
    customer = make_customer(users)
    open_page(client, customer)
    value = my_cookie(client).value
    from itsdangerous import URLSafeTimedSerializer

    signer = URLSafeTimedSerializer([app.config["SECRET_KEY"]], salt="aftercare.customer-session")
    data = signer.loads(value)
    data["t"] -= 2 * 3600 + 1
    client.set_cookie(COOKIE, signer.dumps(data), path="/my")
    assert client.get("/my").status_code == 302
    assert re.fullmatch(r"[\w.-]+", value)
