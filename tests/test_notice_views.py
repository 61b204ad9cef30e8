"""The staff pages of events, notices and sign-offs: forms, errors, buttons and partials."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.accounts import Role
from portal.events.models import Event
from portal.extensions import db
from portal.notices import services as notices
from portal.notices.models import Notice
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from tests.notice_helpers import EN, ZH, approve, make_event, make_notice, marked


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
    # Inside the changed paragraph only the changed words are marked, not the whole line.
    assert marked(page.text, "del") == ["For", "withdrawals call **", "1234**"]
    assert marked(page.text, "ins") == ["Call", "9999"]


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


# --- placeholders, the inline difference, legal's view of a change, publishing on approval ---

PLACEHOLDER_TEXT = {
    "zh_CN": {"title": "故障通知", "body": "预计于 {{ resolution_time }} 前恢复。"},
    "en": {"title": "Outage", "body": "Expected back by {{ resolution_time }}."}}


@pytest.mark.parametrize(("language", "sentence"), [
    ("en", "Fill in every placeholder before asking for sign-off"),
    ("zh-CN", "请先填写所有占位符，再提交法务审批"),
])
def test_request_signoff_refused_lists_the_missing_placeholders(
        client, auth, users, language, sentence) -> None:
    notice = make_notice(users, content=PLACEHOLDER_TEXT)
    auth.login(Role.AGENT)
    headers = {"Accept-Language": language}
    detail = client.get(f"/staff/notices/{notice.id}", headers=headers).text
    assert 'id="unfilled"' in detail and "{{ resolution_time }}" in detail
    response = client.post(f"/staff/notices/{notice.id}/request-signoff", headers=headers)
    assert response.status_code == 422
    page = response.text
    assert sentence in page
    # Beside each text field that holds one, its placeholder.
    for field in ("body_zh_CN", "body_en"):
        error = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', page, re.DOTALL)
        assert error and "{{ resolution_time }}" in error.group(1)
    assert 'id="title_en-error"' not in page
    assert db.session.scalar(select(SignoffRequest)) is None
    assert db.session.get(Notice, notice.id).status == "draft"


def test_new_notice_from_the_outage_starter(client, auth, users) -> None:
    event = make_event(title="CRM 故障 / CRM outage (internal)")
    event.title_zh, event.title_en = "CRM 系统故障", "CRM outage"
    db.session.commit()
    auth.login(Role.AGENT)
    page = client.get(f"/staff/notices/new/{event.id}?starter=outage").text
    assert 'value="CRM 系统故障：服务故障通知"' in page
    assert 'value="CRM outage: service disruption"' in page
    assert "(internal)</textarea>" not in page and "(internal):" not in page


def test_diff_marks_single_changed_chinese_characters(client, auth, users) -> None:
    notice = make_notice(users)
    notices.save(notice, content={"zh_CN": {**ZH, "body": "出金申请请致电 **400-800-1235**。"},
                                  "en": EN},
                 audience="public", planned_publish_at=None, based_on=1,
                 actor=users[Role.AGENT])
    auth.login(Role.LEGAL)
    page = client.get(f"/staff/notices/{notice.id}/diff?a=1&b=2").text
    assert marked(page, "del") == ["1234"]
    assert marked(page, "ins") == ["1235"]
    assert '<span class="visually-hidden">[deleted: </span>' in page  # said without colour


def test_diff_escapes_the_content(client, auth, users) -> None:
    notice = make_notice(users, content={"en": {"title": "T", "body": "a <b>bold</b> claim"}})
    notices.save(notice, content={"en": {"title": "T", "body": "a <script>x</script> claim"}},
                 audience="public", planned_publish_at=None, based_on=1,
                 actor=users[Role.AGENT])
    auth.login(Role.LEGAL)
    page = client.get(f"/staff/notices/{notice.id}/diff?a=1&b=2").text
    assert page.count("<script") == 1  # htmx's own; the content's is text
    assert "a &lt;<ins>" in page and marked(page, "ins") == ["script", "x", "script"]


def test_signoff_page_shows_the_change_since_the_last_approved_version(
        client, auth, users) -> None:
    notice = make_notice(users)
    first = notices.request_signoff(notice, actor=users[Role.AGENT])
    auth.login(Role.LEGAL)
    page = client.get(f"/signoffs/{first.id}").text
    assert "First version to be reviewed" in page
    signoffs.decide(first.id, "approved", "", actor=users[Role.LEGAL])
    notices.save(notice, content={"zh_CN": {**ZH, "title": "CRM 系统故障公告"}, "en": EN},
                 audience="public", planned_publish_at=None, based_on=1,
                 actor=users[Role.AGENT])
    second = notices.request_signoff(notice, actor=users[Role.AGENT])
    db.session.commit()
    page = client.get(f"/signoffs/{second.id}").text
    assert "What changed since the last approved version" in page
    assert marked(page, "del") == ["通知"] and marked(page, "ins") == ["公告"]


def test_approving_on_the_decision_page_says_it_was_published(client, auth, users) -> None:
    notice = make_notice(users, publish_on_approval=True)
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    db.session.commit()
    auth.login(Role.LEGAL)
    response = client.post(f"/signoffs/{request.id}/decide",
                           data={"decision": "approved", "comment": ""}, follow_redirects=True)
    assert f"Notice {notice.ref} approved and published." in response.text
    assert db.session.get(Notice, notice.id).status == "published"


def test_admin_sets_the_notice_contact_details(client, auth, users) -> None:
    auth.login(Role.AGENT)
    assert client.get("/staff/notices/settings").status_code == 403
    auth.logout()
    auth.login(Role.ADMIN)
    bad = client.post("/staff/notices/settings",
                      data={"contact_phone": "call us", "contact_email": "care@example.com"})
    assert bad.status_code == 422
    assert re.search(r'id="contact_phone-error">Enter a phone number', bad.text)
    ok = client.post("/staff/notices/settings",
                     data={"contact_phone": "400-123-4567", "contact_email": "care@example.com"})
    assert ok.status_code == 302
    assert 'value="400-123-4567"' in client.get("/staff/notices/settings").text
