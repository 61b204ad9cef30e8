"""The header search (each kind of key, exact refs straight to the case, a list for several)
and the customer page's one view across events, newest first."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.accounts import Role
from portal.cases import services as cases
from portal.cases.models import CaseNote
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.extensions import db
from portal.mailings import unsubscribe
from portal.mailings.models import Mailing, MailingRecipient
from portal.models import utcnow
from tests.case_helpers import make_case, second_agent
from tests.notice_helpers import make_event


@pytest.fixture
def people(app, users):
    """王芳 in two events (same address and phone, written differently), and 李雷."""
    first, second = make_event(title="CRM outage"), make_event(title="App shutdown")
    wang = customers.create_customer(first, {
        "external_ref": "K-1", "name": "王芳", "email": "Wang.Fang@example.com",
        "phone": "+86 138-0013-8000", "locale": "zh_CN"}, actor=users[Role.AGENT])
    again = customers.create_customer(second, {
        "external_ref": "K-9", "name": "王芳", "email": "wang.fang@example.com",
        "phone": "8613800138000", "locale": "zh_CN"}, actor=users[Role.AGENT])
    li = customers.create_customer(first, {"external_ref": "K-2", "name": "李雷",
                                           "email": "li@example.com"}, actor=users[Role.AGENT])
    return wang, again, li


def _location(response) -> str:
    assert response.status_code == 302, response.status_code
    return response.headers["Location"]


@pytest.mark.parametrize("query", ["wang.fang@EXAMPLE.com", "+86 138 0013 8000",
                                   "(86) 13800138000", "王"])
def test_email_phone_and_name_find_the_person_in_every_event(app, users, auth, client, people,
                                                              query) -> None:
    wang, again, li = people
    auth.login(Role.LEGAL)
    response = client.get("/search", query_string={"q": query})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f"/customers/{wang.id}" in page and f"/customers/{again.id}" in page
    assert f"/customers/{li.id}" not in page
    assert "CRM outage" in page and "App shutdown" in page


def test_one_customer_opens_their_page_and_nothing_says_so(app, users, auth, client,
                                                          people) -> None:
    _wang, _again, li = people
    auth.login(Role.AGENT)
    assert _location(client.get("/search?q=li@example.com")).endswith(f"/customers/{li.id}")
    assert _location(client.get("/search?q=K-2")).endswith(f"/customers/{li.id}")
    page = client.get("/search?q=nobody@example.com").get_data(as_text=True)
    assert "No customer or case matches" in page


def test_a_case_ref_or_a_single_order_ref_opens_the_case(app, users, auth, client,
                                                         people) -> None:
    wang, _again, li = people
    case = make_case(users, customer=wang, order_ref="WD-77")
    make_case(users, customer=li, order_ref="WD-88")
    make_case(users, customer=wang, order_ref="WD-88", kind="compensation")
    auth.login(Role.AGENT)
    assert _location(client.get(f"/search?q={case.ref.lower()}")).endswith(f"/cases/{case.id}")
    assert _location(client.get("/search?q= wd-77 ")).endswith(f"/cases/{case.id}")
    page = client.get("/search?q=WD-88").get_data(as_text=True)  # two cases: a list
    assert "2 cases" in page


def test_only_signed_in_staff_may_search(app, users, client, people) -> None:
    response = client.get("/search?q=li@example.com")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert "globalsearch" not in client.get("/login").get_data(as_text=True)


def test_the_header_offers_the_search_to_staff(app, users, auth, client) -> None:
    auth.login(Role.LEGAL)
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'action="/search"' in page and 'role="search"' in page


def test_the_customer_page_lists_everything_newest_first(app, users, auth, client,
                                                         scenario) -> None:
    from portal.mailings import services as mailings
    from tests.crawl_data import _version_input
    from tests.crawl_data import run_slow_work as run_worker

    event, notice = scenario
    agent = users[Role.AGENT]
    csv = b"external_ref,name,email,locale\nIMP-1,Import One,imp1@example.com,en\n"
    batch = customers.start_import(event, io.BytesIO(csv), "first.csv", actor=agent)
    db.session.commit()
    run_worker()
    customers.confirm_import(batch, actor=agent)
    db.session.commit()
    run_worker()
    customer = db.session.scalar(select(Customer).where(Customer.external_ref == "IMP-1"))
    assert customer.created_by_import_id == batch.id
    again = customers.start_import(event, io.BytesIO(csv.replace(b"Import One", b"Import 1")),
                                   "second.csv", actor=agent)
    db.session.commit()
    run_worker()
    customers.confirm_import(again, actor=agent)
    db.session.commit()
    run_worker()
    mailing = mailings.create_mailing(event, _version_input(notice.latest_version.id),
                                      actor=agent)
    db.session.add(MailingRecipient(mailing_id=mailing.id, customer_id=customer.id,
                                    email=customer.email, locale="en", status="sent",
                                    sent_at=utcnow()))
    case = make_case(users, customer=customer, order_ref="O-9")
    cases.add_reply(case, "We are on it.", actor=agent)
    cases.change_status(case, "start", actor=agent)
    cases.propose(case, actor=agent)
    cases.approve(case, actor=second_agent())
    cases.record_payment(case, amount=case.amount, payout_ref="PAY-9", actor=agent)
    unsubscribe.unsubscribe(customer, via="unsubscribe page")
    # Space the moments out, in the order they happened.
    moments = {"import": 6, "mailing": 5, "case": 4, "reply": 3, "payment": 2}
    now = utcnow()
    db.session.execute(update(Customer).where(Customer.id == customer.id).values(
        created_at=now - timedelta(hours=7), unsubscribed_at=now - timedelta(hours=1)))
    db.session.execute(update(Mailing).where(Mailing.id == mailing.id).values(
        created_at=now - timedelta(hours=moments["mailing"])))
    db.session.execute(update(MailingRecipient).values(
        sent_at=now - timedelta(hours=moments["mailing"])))
    db.session.execute(update(CaseNote).where(CaseNote.kind == "reply").values(
        created_at=now - timedelta(hours=moments["reply"])))
    from portal.cases.models import Case, Payment

    db.session.execute(update(Case).where(Case.id == case.id).values(
        created_at=now - timedelta(hours=moments["case"])))
    db.session.execute(update(Payment).values(paid_at=now - timedelta(hours=moments["payment"])))
    from portal.customers.models import ImportBatch

    db.session.execute(update(ImportBatch).where(ImportBatch.id == again.id).values(
        finished_at=now - timedelta(hours=moments["import"])))
    auth.login(Role.LEGAL)
    page = client.get(f"/customers/{customer.id}",
                      headers={"Accept-Language": "en"}).get_data(as_text=True)
    timeline = re.sub(r"<[^>]*>", "", page[page.index('id="customer-timeline"'):])
    order = ["Unsubscribed from e-mails", "Paid 100.00 CNY on case",
             "Reply to the customer on case",
             f"Case {case.ref} opened", f"Notice {notice.ref} v1 mailed",
             "Updated by the import of second.csv", "Added by the import of first.csv"]
    positions = [timeline.index(text) for text in order]
    assert positions == sorted(positions)
