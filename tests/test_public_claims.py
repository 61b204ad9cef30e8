"""A claim from someone not on the import list: the public form, the double opt-in through a
real SMTP server, the same answer for known and unknown addresses, rate limits in the real
Redis, expiry, and the agents' triage queue (match, create, reject with an e-mailed reason)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from portal.accounts import Role
from portal.cases import claims
from portal.cases.claim_models import Claim, ClaimStatus
from portal.cases.models import Case
from portal.customers.models import Customer
from portal.events import services as events
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from portal.models import utcnow
from tests.case_helpers import make_case, make_customer

FORM = {"name": "张伟", "email": "zhang.wei@example.net", "phone": "", "kind": "refund",
        "order_ref": "WD-900", "amount": "66.60", "description": "订单未退款"}


@pytest.fixture
def notice(scenario):
    event, notice = scenario
    event.accepts_claims = True
    db.session.commit()
    return notice


@pytest.fixture
def mail(app, smtp_server):
    app.config.update(SMTP_HOST=smtp_server["host"], SMTP_PORT=smtp_server["port"])
    return smtp_server["dir"]


def _post(client, notice, lang="zh_CN", ip="10.0.0.1", **changes):
    return client.post(f"/notices/{notice.slug}/claim?lang={lang}", data={**FORM, **changes},
                       environ_base={"REMOTE_ADDR": ip})


def _claims() -> int:
    return db.session.scalar(select(func.count()).select_from(Claim))


def _link(message) -> str:
    return re.search(r"http\S+/claims/confirm/\S+", message.get_content()).group(0)


def test_the_notice_page_offers_the_form_only_where_the_event_accepts_claims(
        client, scenario, users) -> None:
    event, notice = scenario
    assert "/claim" not in client.get(f"/notices/{notice.slug}?lang=en").text
    assert client.get(f"/notices/{notice.slug}/claim").status_code == 404
    # The admin's change empties the cached public pages once committed.
    assert events.update_event(event, title=event.title, severity=event.severity,
                               cause=event.cause, summary=event.summary,
                               actor=users[Role.ADMIN], accepts_claims=True)
    page = client.get(f"/notices/{notice.slug}?lang=en").text
    assert f"/notices/{notice.slug}/claim?lang=en" in page
    form = client.get(f"/notices/{notice.slug}/claim?lang=zh_CN")
    assert form.status_code == 200 and "您的电子邮箱" in form.text


@pytest.mark.integration
def test_double_opt_in_through_a_real_mail_server(client, notice, mail, run_worker) -> None:
    answer = _post(client, notice)
    assert answer.status_code == 302 and "/claim/sent" in answer.location
    [claim] = db.session.scalars(select(Claim)).all()
    assert claim.status == ClaimStatus.UNCONFIRMED and claim.locale == "zh_CN"
    run_worker()
    [message] = read_messages(mail)
    assert message["To"] == "zhang.wei@example.net" and message["Subject"] == "请确认您的申请"
    link = _link(message)
    path = link.split("//", 1)[1].split("/", 1)[1]
    asked = client.get("/" + path)
    assert asked.status_code == 200 and "确认我的申请" in asked.text
    db.session.expire_all()
    assert db.session.get(Claim, claim.id).status == ClaimStatus.UNCONFIRMED  # GET writes nothing
    done = client.post("/" + path)
    assert done.status_code == 200 and "申请已确认" in done.text
    db.session.expire_all()
    claim = db.session.get(Claim, claim.id)
    assert claim.status == ClaimStatus.WAITING and claim.expires_at is None
    assert client.post("/" + path).status_code == 200  # a second click changes nothing


def test_unconfirmed_claims_expire_and_are_purged(client, notice) -> None:
    _post(client, notice, lang="en")
    claim = db.session.scalar(select(Claim))
    token = claims.confirmation_token(claim)
    db.session.execute(update(Claim).values(expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    expired = client.get(f"/claims/confirm/{token}?lang=en")
    assert expired.status_code == 410 and "This link has expired" in expired.text
    assert claims.purge_claims() == (1, 0)
    assert _claims() == 0
    gone = client.get(f"/claims/confirm/{token}?lang=zh_CN")
    assert gone.status_code == 404 and "此链接无效" in gone.text


def test_a_forged_link_gets_a_translated_page(client, notice) -> None:
    _post(client, notice)
    token = claims.confirmation_token(db.session.scalar(select(Claim)))
    forged = client.post(f"/claims/confirm/{token[:-2]}xx?lang=zh_CN")
    assert forged.status_code == 404 and "此链接无效" in forged.text
    assert db.session.scalar(select(Claim)).status == ClaimStatus.UNCONFIRMED


def test_known_and_unknown_addresses_get_the_same_answer(client, notice, users) -> None:
    make_customer(users, ref="K-9", event=notice.event, email="known@example.com")
    db.session.commit()
    known = _post(client, notice, email="known@example.com", ip="10.0.0.2")
    unknown = _post(client, notice, email="nobody@example.org", ip="10.0.0.3")
    assert (known.status_code, known.location) == (unknown.status_code, unknown.location)
    assert client.get(known.location).text == client.get(unknown.location).text
    assert _claims() == 2


def test_bad_input_is_named_by_its_field_in_the_readers_language(client, notice) -> None:
    page = _post(client, notice, email="not-an-address")
    assert page.status_code == 422 and 'id="email-error"' in page.text
    assert "请输入电子邮件地址" in page.text
    page = _post(client, notice, lang="en", amount="1e5")
    assert page.status_code == 422 and 'id="amount-error"' in page.text
    assert _claims() == 0


def test_claims_are_rate_limited_per_address_and_per_ip(app_factory, users) -> None:
    app = app_factory(CLAIM_LIMIT_PER_IP="3 per hour", CLAIM_LIMIT_PER_ADDRESS="2 per hour")
    with app.app_context():
        from tests.notice_helpers import make_event, make_notice, publish

        event = make_event()
        event.accepts_claims = True
        from portal.auth import services as auth

        staff = {role: auth.create_user(f"{role.value}@x.example", role.value, role, "p" * 12,
                                        must_change_password=False)[0] for role in Role}
        notice = make_notice(staff, event)
        publish(notice, staff)
        db.session.commit()
        client = app.test_client()
        for ip in ("10.1.0.1", "10.1.0.2"):
            assert _post(client, notice, ip=ip).status_code == 302
        limited = _post(client, notice, ip="10.1.0.3")  # the third from this address
        assert limited.status_code == 429 and "请求过于频繁" in limited.text
        for n in range(2):
            assert _post(client, notice, ip="10.1.0.9", email=f"a{n}@x.example").status_code \
                == 302
        assert _post(client, notice, ip="10.1.0.9", email="a2@x.example").status_code == 302
        assert _post(client, notice, ip="10.1.0.9", email="a3@x.example").status_code == 429
        assert _claims() == 5


# --- triage -----------------------------------------------------------------------------------


def _waiting_claim(notice, locale="en", **changes) -> Claim:
    person = claims.Claimant(name=changes.pop("name", "Jane Roe"), email="jane@example.org",
                             phone="", locale=locale)
    claim = claims.submit_public(notice.event, person, claims.ClaimInput(
        kind="refund", order_ref=changes.pop("order_ref", "WD-1"),
        amount=changes.pop("amount", "50"), description="Not refunded"))
    claims.confirm(claim)
    db.session.commit()
    return claim


def test_an_agent_matches_a_claim_to_a_customer(client, auth, notice, users) -> None:
    customer = make_customer(users, ref="K-5", event=notice.event, email="jane@example.org")
    claim = _waiting_claim(notice)
    auth.login(Role.AGENT)
    queue = client.get("/triage/")
    assert queue.status_code == 200 and f"/triage/{claim.id}" in queue.text
    page = client.get(f"/triage/{claim.id}")
    assert page.status_code == 200 and "K-5" in page.text  # found by the claimant's e-mail
    answer = client.post(f"/triage/{claim.id}/match", data={"customer_id": customer.id})
    assert answer.status_code == 302
    db.session.expire_all()
    claim = db.session.get(Claim, claim.id)
    case = db.session.get(Case, claim.case_id)
    assert (claim.status, claim.decision, claim.decided_by_id) == (
        ClaimStatus.ACCEPTED, "matched", users[Role.AGENT].id)
    assert (case.source, case.status, case.customer_id) == ("triage", "new", customer.id)


def test_an_agent_creates_the_customer_from_a_claim(client, auth, notice, users) -> None:
    claim = _waiting_claim(notice, amount="")
    auth.login(Role.ADMIN)
    refused = client.post(f"/triage/{claim.id}/create", data={"amount": ""})
    assert refused.status_code == 422 and 'id="create-amount-error"' in refused.text
    assert client.post(f"/triage/{claim.id}/create", data={"amount": "75"}).status_code == 302
    db.session.expire_all()
    customer = db.session.scalar(select(Customer).where(
        Customer.external_ref == f"CLAIM-{claim.id}"))
    assert (customer.name, customer.email, customer.locale) == (
        "Jane Roe", "jane@example.org", "en")
    assert db.session.get(Claim, claim.id).decision == "created"


def test_the_duplicate_rule_holds_in_triage(client, auth, notice, users) -> None:
    customer = make_customer(users, ref="K-5", event=notice.event, email="jane@example.org")
    existing = make_case(users, customer=customer, order_ref="WD-1")
    claim = _waiting_claim(notice)
    auth.login(Role.AGENT)
    refused = client.post(f"/triage/{claim.id}/match", data={"customer_id": customer.id})
    assert refused.status_code == 422 and existing.ref in refused.text
    db.session.expire_all()
    assert db.session.get(Claim, claim.id).status == ClaimStatus.WAITING


@pytest.mark.integration
@pytest.mark.parametrize(("locale", "subject", "text"), [
    ("en", "Your claim about order WD-1", "cannot accept it"),
    ("zh_CN", "关于订单 WD-1 的申请", "无法受理"),
])
def test_a_rejection_is_emailed_with_its_reason_in_the_claimants_language(
        client, auth, notice, mail, run_worker, locale, subject, text) -> None:
    claim = _waiting_claim(notice, locale=locale)
    auth.login(Role.AGENT)
    refused = client.post(f"/triage/{claim.id}/reject", data={"reason": ""})
    assert refused.status_code == 422 and 'id="reason-error"' in refused.text
    answer = client.post(f"/triage/{claim.id}/reject",
                         data={"reason": "该订单已于 11 月 20 日退款。"})
    assert answer.status_code == 302
    run_worker()
    messages = [m for m in read_messages(mail) if m["Subject"] == subject]
    assert len(messages) == 1
    body = messages[0].get_content()
    assert text in body and "该订单已于 11 月 20 日退款。" in body
    assert db.session.get(Claim, claim.id).status == ClaimStatus.REJECTED


@pytest.mark.parametrize("role", [Role.LEGAL])
def test_only_agents_and_admins_decide(client, auth, notice, role) -> None:
    claim = _waiting_claim(notice)
    auth.login(role)
    assert client.get("/triage/").status_code == 403
    assert client.post(f"/triage/{claim.id}/reject", data={"reason": "no"}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Claim, claim.id).status == ClaimStatus.WAITING


def test_waiting_claims_count_on_the_agents_work(client, auth, notice) -> None:
    claim = _waiting_claim(notice, name="Jane Roe")
    auth.login(Role.AGENT)
    page = client.get("/dashboard").text
    assert re.search(r'id="my-work-count">1\b', page)
    assert 'id="my-work-claims"' in page and f"/triage/{claim.id}" in page
