"""The staff pages of events, notices and sign-offs: forms, errors, buttons and partials."""

from __future__ import annotations

from sqlalchemy import select

from portal.accounts import Role
from portal.events.models import Event
from portal.extensions import db
from portal.notices import services as notices
from portal.notices.models import Notice
from portal.signoffs.models import SignoffRequest
from tests.notice_helpers import EN, ZH, approve, make_event, make_notice


def test_admin_opens_and_moves_an_event(client, auth, users) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/events/new", data={"title": "关停旧商城", "kind": "shutdown",
                                                 "severity": "sev3", "cause": "business",
                                                 "summary": "Old shop closes."})
    assert response.status_code == 302
    event = db.session.scalar(select(Event))
    assert event.status == "planning"
    bad = client.post(f"/events/{event.id}/status", data={"status": "closed"},
                      follow_redirects=True)
    assert "one phase at a time" in bad.text and event.status == "planning"
    client.post(f"/events/{event.id}/status", data={"status": "announced"})
    db.session.refresh(event)
    assert event.status == "announced"
    page = client.get(f"/events/{event.id}")
    assert "event.status" in page.text  # its history


def test_event_form_errors_stay_next_to_fields(client, auth, users) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/events/new", data={"title": "", "kind": "incident",
                                                 "severity": "sev9", "cause": "system"})
    assert response.status_code == 422
    assert 'id="title-error"' in response.text and 'id="severity-error"' in response.text
    assert db.session.scalar(select(Event)) is None


def test_draft_from_a_template_with_placeholders(client, auth, users) -> None:
    event = make_event()
    auth.login(Role.AGENT)
    page = client.get(f"/staff/notices/new/{event.id}?starter=outage")
    assert "CRM 系统故障：服务故障通知" in page.text  # event title filled in
    assert "400-800-1234" in page.text and "{{ resolution_time }}" in page.text
    response = client.post(f"/staff/notices/new/{event.id}", data={
        "audience": "public", "title_zh_CN": ZH["title"], "body_zh_CN": ZH["body"],
        "title_en": "", "body_en": ""})
    assert response.status_code == 302
    notice = db.session.scalar(select(Notice))
    assert notice.latest_version.content() == {"zh_CN": ZH}


def test_empty_draft_is_refused_with_a_message(client, auth, users) -> None:
    event = make_event()
    auth.login(Role.AGENT)
    response = client.post(f"/staff/notices/new/{event.id}", data={
        "audience": "public", "title_zh_CN": "", "body_zh_CN": "", "title_en": "",
        "body_en": ""})
    assert response.status_code == 422
    assert 'id="title_zh_CN-error"' in response.text
    assert db.session.scalar(select(Notice)) is None


def test_live_preview_is_sanitised(client, auth, users) -> None:
    auth.login(Role.AGENT)
    response = client.post("/staff/notices/preview?locale=en", data={
        "title_en": "Hello", "body_en": "**bold** <script>alert(1)</script>"})
    assert "<strong>bold</strong>" in response.text and "<script>" not in response.text
    assert "<html" not in response.text
    assert client.post("/staff/notices/preview?locale=fr").status_code == 400
    auth.logout()
    auth.login(Role.LEGAL)
    assert client.post("/staff/notices/preview?locale=en").status_code == 403


def test_edit_conflict_keeps_both_texts_safe(client, auth, users) -> None:
    notice = make_notice(users)
    auth.login(Role.AGENT)
    form = client.get(f"/staff/notices/{notice.id}/edit").text
    assert 'name="based_on" type="hidden" value="1"' in form
    notices.save(notice, content={"en": {**EN, "title": "Someone else"}}, audience="public",
                 planned_publish_at=None, based_on=1, actor=users[Role.ADMIN])
    response = client.post(f"/staff/notices/{notice.id}/edit", data={
        "audience": "public", "title_en": "Mine", "body_en": "x", "based_on": "1"})
    assert response.status_code == 422
    assert "newer version" in response.text
    assert 'value="Mine"' in response.text  # the editor's text is still in the form
    db.session.refresh(notice)
    assert notice.latest_version.title_en == "Someone else"


def test_diff_shows_changed_lines_side_by_side(client, auth, users) -> None:
    notice = make_notice(users)
    notices.save(notice, content={"zh_CN": ZH, "en": {**EN, "body": "Call 400-800-9999."}},
                 audience="public", planned_publish_at=None, based_on=1,
                 actor=users[Role.AGENT])
    auth.login(Role.LEGAL)
    page = client.get(f"/staff/notices/{notice.id}/diff?a=1&b=2")
    assert "<del>For withdrawals call **400-800-1234**.</del>" in page.text
    assert "<ins>Call 400-800-9999.</ins>" in page.text


def test_full_flow_through_the_staff_pages(app, client, auth, users) -> None:
    notice = make_notice(users)
    auth.login(Role.AGENT)
    detail = client.get(f"/staff/notices/{notice.id}").text
    assert "Request legal sign-off" in detail
    assert f"/staff/notices/{notice.id}/publish" not in detail  # no grant, no button
    client.post(f"/staff/notices/{notice.id}/request-signoff")
    request = db.session.scalar(select(SignoffRequest))
    auth.logout()
    auth.login(Role.LEGAL)
    queue = client.get("/signoffs/").text
    assert notice.ref in queue
    page = client.get(f"/signoffs/{request.id}").text
    assert ZH["title"] in page and "<strong>400-800-1234</strong>" in page  # the snapshot
    refused = client.post(f"/signoffs/{request.id}/decide", data={"decision": "rejected",
                                                                    "comment": ""})
    assert refused.status_code == 422 and 'id="comment-error"' in refused.text
    client.post(f"/signoffs/{request.id}/decide", data={"decision": "approved", "comment": ""})
    assert db.session.get(SignoffRequest, request.id).status == "approved"
    auth.logout()
    auth.login(Role.AGENT)
    assert "hx-confirm" in client.get(f"/staff/notices/{notice.id}").text
    response = client.post(f"/staff/notices/{notice.id}/publish", follow_redirects=True)
    assert f"Notice {notice.ref} published." in response.text
    db.session.refresh(notice)
    assert notice.status == "published"
    assert client.get(f"/notices/{notice.slug}").status_code == 200


def test_only_legal_decides_through_the_page(client, auth, users) -> None:
    notice = make_notice(users)
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    auth.login(Role.ADMIN)
    assert client.post(f"/signoffs/{request.id}/decide",
                       data={"decision": "approved"}).status_code == 403
    page = client.get(f"/signoffs/{request.id}").text
    assert "Record decision" not in page and "Only the legal team" in page


def test_emergency_publish_through_the_page_and_dashboard(client, auth, users) -> None:
    notice = make_notice(users, make_event(severity="sev2"))
    auth.login(Role.ADMIN)
    refused = client.post(f"/staff/notices/{notice.id}/emergency-publish",
                          data={"reason": ""}, follow_redirects=True)
    assert "Give the reason" in refused.text
    client.post(f"/staff/notices/{notice.id}/emergency-publish",
                data={"reason": "Hotline overloaded"})
    db.session.refresh(notice)
    assert notice.status == "published"
    page = client.get(f"/staff/notices/{notice.id}").text
    assert "published before legal review" in page and "Hotline overloaded" in page
    dashboard = client.get("/dashboard").text
    assert "Published before legal review, awaiting review" in dashboard
    assert notice.ref in dashboard


def test_legal_queue_filters_and_shows_age(client, auth, users) -> None:
    notice = make_notice(users)
    approve(notice, users)
    other = make_notice(users)
    notices.request_signoff(other, actor=users[Role.AGENT])
    auth.login(Role.LEGAL)
    queue = client.get("/signoffs/?kind=notice_version").text
    assert other.ref in queue and notice.ref not in queue  # decided ones leave the queue
    assert "second" in queue or "minute" in queue  # the age column
    assert other.ref not in client.get("/signoffs/?kind=case_decision").text
    assert other.ref in client.get("/signoffs/?kind=bogus").text  # unknown kinds show all


def test_withdraw_through_the_page(client, auth, users) -> None:
    from tests.notice_helpers import publish

    notice = make_notice(users)
    publish(notice, users)
    auth.login(Role.AGENT)
    refused = client.post(f"/staff/notices/{notice.id}/withdraw", data={"reason": ""},
                          follow_redirects=True)
    assert "Give the reason" in refused.text
    client.post(f"/staff/notices/{notice.id}/withdraw", data={"reason": "Wrong", "hide": "y"})
    db.session.refresh(notice)
    assert notice.status == "withdrawn" and notice.hidden
    assert client.get(f"/notices/{notice.slug}").status_code == 404
