"""Where each role starts and who may do what it may not: New event and New case, the line
naming who can when a button is hidden, the event page's navigation; the event's titles per
language and its public title."""

from __future__ import annotations

import re

import pytest
from flask_babel import force_locale

from portal.accounts import Role
from portal.customers import services as customers
from portal.events import services as events
from portal.extensions import db
from portal.notices import publishing
from portal.notices import services as notices
from portal.notices.models import Notice
from portal.security import who_can
from tests.notice_helpers import make_event, make_notice, publish


def test_events_list_shows_new_event_or_who_can_open_one(client, auth) -> None:
    auth.login(Role.AGENT)
    page = client.get("/events/").text
    assert "/events/new" not in page
    assert "Opening an event is for: Admin / incident lead." in page
    auth.logout()
    auth.login(Role.ADMIN)
    page = client.get("/events/").text
    assert 'href="/events/new"' in page and "Opening an event is for" not in page


def test_who_can_names_the_roles_in_the_readers_language(app) -> None:
    with app.test_request_context():
        with force_locale("zh_CN"):
            assert who_can("events.create") == "管理员 / 事件负责人"
            assert who_can("cases.pick_customer") == "客服、管理员 / 事件负责人"
        with force_locale("en"):
            assert who_can("cases.pick_customer") == "Customer service, Admin / incident lead"


@pytest.mark.parametrize("role", [Role.AGENT, Role.LEGAL])
def test_cases_list_offers_a_new_case_or_says_who_can(client, auth, role) -> None:
    auth.login(role)
    page = client.get("/cases/").text
    if role == Role.AGENT:
        assert 'href="/cases/new"' in page
    else:
        assert 'href="/cases/new"' not in page
        assert "Opening and working cases is for: Customer service, Admin" in page
        assert client.get("/cases/new").status_code == 403


def test_new_case_finds_the_customer_by_name_email_or_ref(client, auth, users) -> None:
    event = make_event()
    wang = customers.create_customer(event, {"external_ref": "CRM-77", "name": "王芳",
                                             "email": "wang.fang@example.com"},
                                     actor=users[Role.AGENT])
    customers.create_customer(event, {"external_ref": "CRM-78", "name": "Li Lei",
                                      "email": "li@example.com"}, actor=users[Role.AGENT])
    db.session.commit()
    auth.login(Role.AGENT)
    for query in ("王芳", "WANG.FANG@", "crm-77"):
        page = client.get("/cases/new", query_string={"q": query}).text
        assert f'href="/cases/new/{wang.id}"' in page, query
        assert "Li Lei" not in page
    assert "Type at least 2 characters" in client.get("/cases/new?q=%").text
    assert "No customers match" in client.get("/cases/new?q=%25%25").text  # no LIKE wildcard
    # The existing form hanging off the customer opens the case.
    assert client.get(f"/cases/new/{wang.id}").status_code == 200


def test_event_page_leads_with_notices_and_a_navigation_with_counts(client, auth, users) -> None:
    notice = make_notice(users)
    auth.login(Role.LEGAL)
    page = client.get(f"/events/{notice.event_id}").text
    assert page.index('id="notices"') < page.index('id="checklist"') < page.index('id="timeline"')
    nav = page[page.index('<nav class="inpage"'):page.index("</nav>", page.index('class="inpage"'))]
    assert 'href="#notices">Notices <span class="count">1</span>' in nav
    for anchor in ("#cases", "#timeline", "#checklist", "/mailings/"):
        assert anchor in nav
    assert "Drafting a notice is for: Customer service, Admin / incident lead." in page
    notice_page = client.get(f"/staff/notices/{notice.id}").text
    assert ("Editing, sending to legal and publishing notices is for: Customer service, "
            "Admin / incident lead.") in notice_page


def test_event_titles_per_language_and_public_title(client, auth, users) -> None:
    event = events.create_event(title="Internal: CRM db01 failover", kind="incident",
                                severity="sev2", cause="system", actor=users[Role.ADMIN],
                                titles={"title_zh": " CRM 系统故障 ", "title_en": "CRM outage",
                                        "public_title_en": "Online service disruption"})
    assert (event.title_zh, event.title_en) == ("CRM 系统故障", "CRM outage")
    assert event.title_in("zh_CN") == "CRM 系统故障"
    assert event.public_title_zh is None
    assert event.public_title_in("zh_CN") == "Online service disruption"  # the other language
    db.session.commit()
    auth.login(Role.ADMIN)
    response = client.post(f"/events/{event.id}/edit", data={
        "title": event.title, "severity": "sev2", "cause": "system", "summary": "",
        "title_zh": "CRM 系统故障", "title_en": "CRM outage",
        "public_title_zh": "在线服务中断", "public_title_en": "x" * 201})
    assert response.status_code == 422  # too long, beside its field
    assert 'id="public_title_en-error"' in response.text
    assert db.session.get(type(event), event.id).public_title_zh is None


def test_public_filter_names_only_events_with_a_public_title(client, users) -> None:
    named = make_event(title="CRM outage (internal)")
    named.public_title_zh, named.public_title_en = "在线服务中断", "Online service disruption"
    shutdown = make_event(title="Old line (internal)", severity="sev3")
    shutdown.public_title_zh = "旧业务关停"  # no English one: the Chinese one serves
    drill = make_event(title="Test event: drill", severity="sev4")
    for event in (named, shutdown, drill):
        publish(make_notice(users, event), users)
    publishing.after_publication([n.id for n in notices.public_notices()])
    db.session.commit()
    en = client.get("/notices?lang=en").text
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', en)
    assert options == [(str(named.id), "Online service disruption"),
                       (str(shutdown.id), "旧业务关停")]
    assert "drill" not in en and "(internal)" not in en
    assert "在线服务中断" in client.get("/notices?lang=zh_CN").text


def test_demo_data_shows_titles_publish_on_approval_and_a_change_for_legal(app) -> None:
    from portal.main.cli import seed_demo
    from portal.notices.comparison import last_approved_before
    from portal.signoffs.models import SignoffRequest

    seed_demo()
    [notice] = db.session.scalars(db.select(Notice)).all()
    event = notice.event
    assert (event.title_zh, event.title_en) == ("CRM 系统故障", "CRM outage")
    assert event.public_title_zh and event.public_title_en
    assert notice.publish_on_approval and notice.publications[0].published_by.role == "legal"
    pending = notice.latest_version
    assert pending.number == 2 and notice.published_version.number == 1
    request = db.session.scalar(db.select(SignoffRequest).where(
        SignoffRequest.subject_id == pending.id, SignoffRequest.status == "pending"))
    assert request is not None and last_approved_before(pending).number == 1
    assert "{{" not in pending.body_zh + pending.body_en
