"""Notice rules: versions, sanitising, sign-off bound to the content, publishing, schedules,
emergencies and withdrawal."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select, text

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.errors import RuleViolation
from portal.extensions import db
from portal.markdown import ALLOWED_TAGS, render_markdown
from portal.models import utcnow
from portal.notices import content, publishing, settings
from portal.notices import services as notices
from portal.notices.comparison import inline, last_approved_before, side_by_side
from portal.notices.content import fill_placeholders, unfilled_placeholders
from portal.notices.models import ImmutableError, NoticeVersion, Publication
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from tests.notice_helpers import EN, ZH, approve, make_event, make_notice, publish

# --- drafting and versions ---------------------------------------------------------------


def test_new_notice_has_ref_slug_and_version_one(app, users) -> None:
    notice = make_notice(users)
    assert notice.ref.startswith("N-") and notice.status == "draft"
    assert notice.slug.startswith(notice.ref.lower()) and notice.slug.endswith("crm-outage")
    assert [v.number for v in notice.versions] == [1]
    assert notice.latest_version.content() == {"zh_CN": ZH, "en": EN}


def test_refs_are_unique(app, users) -> None:
    event = make_event()
    refs = {make_notice(users, event).ref for _ in range(3)}
    assert len(refs) == 3


def test_at_least_one_language_and_titles_required(app, users) -> None:
    with pytest.raises(RuleViolation, match="at least one language"):
        make_notice(users, content={"zh_CN": {"title": " ", "body": ""}})
    with pytest.raises(RuleViolation, match="needs a title") as err:
        make_notice(users, content={"en": {"title": "", "body": "text without title"}})
    assert err.value.field == "title_en"
    only_en = make_notice(users, content={"en": EN})
    assert only_en.latest_version.in_locale("zh_CN") == ("en", EN)  # falls back


def test_each_changed_save_is_a_new_immutable_version(app, users) -> None:
    notice = make_notice(users)
    v2 = notices.save(notice, content={"zh_CN": ZH, "en": {**EN, "body": "Changed."}},
                      audience="public", planned_publish_at=None, based_on=1,
                      actor=users[Role.AGENT])
    assert v2.number == 2
    unchanged = notices.save(notice, content={"zh_CN": ZH, "en": {**EN, "body": "Changed."}},
                             audience="public", planned_publish_at=None, based_on=2,
                             actor=users[Role.AGENT])
    assert unchanged is None
    first = notice.versions[0]
    first.title_en = "rewritten"
    with pytest.raises(ImmutableError):
        db.session.flush()
    db.session.rollback()


def test_a_stale_editor_overwrites_nothing(app, users) -> None:
    notice = make_notice(users)
    notices.save(notice, content={"en": EN}, audience="public", planned_publish_at=None,
                 based_on=1, actor=users[Role.AGENT])
    with pytest.raises(RuleViolation, match="newer version"):
        notices.save(notice, content={"en": {**EN, "title": "Mine"}}, audience="public",
                     planned_publish_at=None, based_on=1, actor=users[Role.ADMIN])
    assert notice.latest_version.title_en == EN["title"]
    assert db.session.scalar(select(func.count(NoticeVersion.id))) == 2


# --- sanitising --------------------------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<iframe src=\"https://evil.example\"></iframe>",
    "<svg onload=alert(1)>",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<style>body{display:none}</style>",
    "![img](https://evil.example/track.png)",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "[x](vbscript:msgbox)",
]


class _Elements(HTMLParser):
    """The elements and attributes a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize("payload", XSS)
def test_sanitiser_removes_active_content(payload: str) -> None:
    parser = _Elements()
    parser.feed(render_markdown(payload))
    for tag, attrs in parser.found:
        assert tag in ALLOWED_TAGS, (payload, tag)
        assert not any(name.startswith("on") or name == "style" for name in attrs), payload
        href = (attrs.get("href") or "").strip().lower()
        assert not href or href.split(":", 1)[0] in ("http", "https", "mailto", "tel"), payload


def test_sanitiser_keeps_ordinary_markdown() -> None:
    html = render_markdown("## 进展\n\n- **致电** [400](tel:4008001234)\n- [官网](https://a.example)")
    assert "<h2>进展</h2>" in html and "<strong>致电</strong>" in html
    assert 'href="tel:4008001234"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_placeholders_fill_known_names_only() -> None:
    text = fill_placeholders("{{ event_title }} — call {{contact_phone}} {{ unknown }}",
                             {"event_title": "CRM", "contact_phone": "400"})
    assert text == "CRM — call 400 {{ unknown }}"


# --- sign-off -----------------------------------------------------------------------------


def test_four_eyes(app, users) -> None:
    notice = make_notice(users)  # written by the agent
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    assert notice.status == "in_review"
    for who in (Role.AGENT, Role.ADMIN):
        with pytest.raises(RuleViolation, match="Only the legal team"):
            signoffs.decide(request.id, "approved", "", actor=users[who])
    # A legal user who wrote the version may not approve it either.
    from portal.auth import services as auth

    legal2, _ = auth.create_user("legal2@example.com", "L2", Role.LEGAL, "x" * 12)
    own = notices.create_notice(notice.event, audience="public", content={"en": EN},
                                actor=legal2)
    own_request = notices.request_signoff(own, actor=users[Role.AGENT])
    with pytest.raises(RuleViolation, match="You wrote this content"):
        signoffs.decide(own_request.id, "approved", "", actor=legal2)
    # Nor one who requested it.
    asked = notices.create_notice(notice.event, audience="public", content={"en": EN},
                                  actor=users[Role.AGENT])
    asked_request = notices.request_signoff(asked, actor=legal2)
    with pytest.raises(RuleViolation, match="You requested"):
        signoffs.decide(asked_request.id, "approved", "", actor=legal2)
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    assert notice.status == "approved"


def test_comment_required_to_reject_or_request_changes(app, users) -> None:
    notice = make_notice(users)
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    for decision in ("rejected", "changes_requested"):
        with pytest.raises(RuleViolation, match="comment is required") as err:
            signoffs.decide(request.id, decision, "  ", actor=users[Role.LEGAL])
        assert err.value.field == "comment"
    signoffs.decide(request.id, "changes_requested", "Add the hotline hours.",
                    actor=users[Role.LEGAL])
    assert notice.status == "draft"
    assert db.session.get(SignoffRequest, request.id).comment == "Add the hotline hours."


def test_one_decision_only_even_when_two_reviewers_race(app, users) -> None:
    """Two legal reviewers post their decisions at the same moment, as real requests in two
    threads. Both pass every check before either writes (they wait for each other right
    before the UPDATE), so only the conditional UPDATE can keep the second one out."""
    import threading

    from sqlalchemy import event

    from portal.auth import services as auth
    from tests.conftest import PASSWORD

    auth.create_user("legal2@example.com", "L2", Role.LEGAL, PASSWORD,
                     must_change_password=False)
    notice = make_notice(users)
    request_id = notices.request_signoff(notice, actor=users[Role.AGENT]).id
    reviewers = []
    for email in (users[Role.LEGAL].email, "legal2@example.com"):
        reviewer = app.test_client()
        assert reviewer.post("/login", data={"email": email, "password": PASSWORD}
                             ).status_code == 302
        reviewers.append(reviewer)
    both_checked = threading.Barrier(2)

    def before_update(conn, cursor, statement: str, *args) -> None:
        if statement.lstrip().upper().startswith("UPDATE SIGNOFF_REQUEST"):
            both_checked.wait(timeout=20)

    answers: list[int] = []
    errors: list[BaseException] = []

    def decide(reviewer, decision: str) -> None:
        try:
            answers.append(reviewer.post(f"/signoffs/{request_id}/decide", data={
                "decision": decision, "comment": "At the same time"}).status_code)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=decide, args=(reviewer, decision))
               for reviewer, decision in zip(reviewers, ("approved", "rejected"), strict=True)]
    event.listen(db.engine, "before_cursor_execute", before_update)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        event.remove(db.engine, "before_cursor_execute", before_update)
    assert not errors and not both_checked.broken
    assert sorted(answers) == [302, 422]  # one decision recorded, one told it is too late
    db.session.expire_all()
    row = db.session.get(SignoffRequest, request_id)
    assert row.status in ("approved", "rejected")
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action.like("signoff.%"), AuditEntry.subject_id == str(request_id),
        AuditEntry.action != "signoff.request")) == 1


def test_snapshot_is_what_legal_reads_and_binds_the_hash(app, users) -> None:
    notice = make_notice(users)
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    assert request.snapshot["locales"]["zh_CN"]["body_html"] == (
        "<p>出金申请请致电 <strong>400-800-1234</strong>。</p>\n")
    assert request.snapshot["audience"] == "public"
    assert request.snapshot_hash == signoffs.snapshot_hash(request.snapshot)


def test_an_edit_voids_pending_and_granted_signoffs(app, users) -> None:
    notice = make_notice(users)
    approve(notice, users)
    grant = signoffs.granted(notices.SUBJECT, notice.latest_version.id)
    notices.save(notice, content={"zh_CN": ZH, "en": {**EN, "title": "New"}},
                 audience="public", planned_publish_at=None, based_on=1,
                 actor=users[Role.AGENT])
    assert db.session.get(SignoffRequest, grant.id).status == "voided"
    assert notice.status == "draft"
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "signoff.void"))
    # Changing only the audience voids too: legal approved the audience.
    request = notices.request_signoff(notice, actor=users[Role.AGENT])
    notices.save(notice, content={"zh_CN": ZH, "en": {**EN, "title": "New"}},
                 audience="direct", planned_publish_at=None, based_on=2,
                 actor=users[Role.AGENT])
    assert db.session.get(SignoffRequest, request.id).status == "voided"
    with pytest.raises(RuleViolation, match="not approved"):
        publishing.publish(notice, actor=users[Role.AGENT])


def test_publishing_rechecks_the_hash_of_the_content(app, users) -> None:
    notice = make_notice(users)
    approve(notice, users)
    version_id = notice.latest_version.id
    db.session.commit()
    with db.engine.begin() as conn:  # someone changes the text behind the application
        conn.execute(text("UPDATE notice_version SET body_en = 'Do not call.' WHERE id = :id"),
                     {"id": version_id})
    db.session.expire_all()
    with pytest.raises(RuleViolation, match="differs"):
        publishing.publish(notice, actor=users[Role.AGENT])
    assert notice.published_version_id is None


# --- publishing ---------------------------------------------------------------------------


def test_publish_and_update_build_a_timeline(app, users) -> None:
    notice = make_notice(users)
    with pytest.raises(RuleViolation, match="not approved"):
        publishing.publish(notice, actor=users[Role.AGENT])
    publish(notice, users)
    assert notice.status == "published" and notice.published_version.number == 1
    notices.save(notice, content={"zh_CN": {**ZH, "title": "已恢复"}, "en": EN},
                 audience="public", planned_publish_at=None, based_on=1,
                 actor=users[Role.AGENT])
    assert notice.status == "published"  # the public keeps seeing version 1 meanwhile
    assert notice.published_version.number == 1
    publish(notice, users)
    assert notice.published_version.number == 2
    assert [p.version.number for p in notice.publications] == [1, 2]
    assert notice.last_published_at >= notice.first_published_at


def test_scheduled_publication_waits_in_the_database(app, users) -> None:
    when = utcnow() + timedelta(hours=2)
    notice = make_notice(users, planned_publish_at=when)
    approve(notice, users)
    assert publishing.publish(notice, actor=users[Role.AGENT]) is None
    assert notice.scheduled_at == when and notice.published_version_id is None
    assert publishing.publish_due(now=when - timedelta(minutes=1)) == []
    db.session.expire_all()  # as after a restart: only the database remembers
    assert publishing.publish_due(now=when + timedelta(seconds=1)) == [notice.id]
    assert notice.status == "published" and notice.scheduled_at is None


def test_an_edit_cancels_the_schedule(app, users) -> None:
    when = utcnow() + timedelta(hours=1)
    notice = make_notice(users, planned_publish_at=when)
    approve(notice, users)
    publishing.publish(notice, actor=users[Role.AGENT])
    notices.save(notice, content={"en": EN}, audience="public", planned_publish_at=when,
                 based_on=1, actor=users[Role.AGENT])
    assert notice.scheduled_at is None
    assert publishing.publish_due(now=when + timedelta(minutes=1)) == []
    assert notice.published_version_id is None


def test_emergency_publish_rules(app, users) -> None:
    calm = make_notice(users, make_event(severity="sev3"))
    with pytest.raises(RuleViolation, match="sev1 and sev2"):
        publishing.emergency_publish(calm, reason="now", actor=users[Role.ADMIN])
    notice = make_notice(users, make_event(severity="sev1"))
    with pytest.raises(RuleViolation, match="Only the incident lead"):
        publishing.emergency_publish(notice, reason="now", actor=users[Role.AGENT])
    with pytest.raises(RuleViolation, match="reason"):
        publishing.emergency_publish(notice, reason=" ", actor=users[Role.ADMIN])
    assert notice.published_version_id is None
    publishing.emergency_publish(notice, reason="Customers are calling", actor=users[Role.ADMIN])
    [publication] = notice.publications
    assert publication.emergency and publication.emergency_reason == "Customers are calling"
    retro = signoffs.latest(notices.SUBJECT, notice.published_version_id)
    assert retro.retroactive and retro.status == "pending"
    assert [p.id for p in publishing.emergency_publications_awaiting_review()] == [publication.id]
    assert not retro.overdue
    retro.requested_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    assert signoffs.overdue_retroactive() == [retro]
    signoffs.decide(retro.id, "approved", "", actor=users[Role.LEGAL])
    assert publishing.emergency_publications_awaiting_review() == []


def test_withdraw_needs_a_reason_and_can_hide(app, users) -> None:
    notice = make_notice(users)
    with pytest.raises(RuleViolation, match="Only a published"):
        publishing.withdraw(notice, reason="x", hide=False, actor=users[Role.AGENT])
    publish(notice, users)
    with pytest.raises(RuleViolation, match="reason"):
        publishing.withdraw(notice, reason="", hide=False, actor=users[Role.AGENT])
    publishing.withdraw(notice, reason="Wrong number", hide=True, actor=users[Role.AGENT])
    assert notice.status == "withdrawn" and not notice.publicly_visible
    assert notices.public_notice(notice.slug) is None
    with pytest.raises(RuleViolation):
        notices.save(notice, content={"en": EN}, audience="public", planned_publish_at=None,
                     based_on=1, actor=users[Role.AGENT])


def test_every_state_change_is_audited_with_the_notice(app, users) -> None:
    notice = make_notice(users)
    publish(notice, users)
    actions = db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.subject_type == "notice", AuditEntry.subject_id == str(notice.id))).all()
    assert actions == ["notice.create", "notice.publish"]
    assert db.session.scalar(select(func.count(Publication.id))) == 1


# --- placeholders, the inline difference, the last approved version, contact settings ---------


def test_unfilled_placeholders_block_the_request_for_signoff(users) -> None:
    notice = make_notice(users, content={
        "zh_CN": {"title": "故障",
                  "body": "预计 {{ resolution_time }} 恢复，请致电 {{contact_phone}}。"},
        "en": {"title": "Outage {{ event_title }}", "body": "Back by {{ resolution_time }}."}})
    with pytest.raises(notices.UnfilledPlaceholders) as refused:
        notices.request_signoff(notice, actor=users[Role.AGENT])
    assert refused.value.missing == {
        "body_zh_CN": ["{{ resolution_time }}", "{{ contact_phone }}"],
        "title_en": ["{{ event_title }}"], "body_en": ["{{ resolution_time }}"]}
    assert db.session.scalar(select(func.count(SignoffRequest.id))) == 0
    assert notice.status == "draft"
    assert unfilled_placeholders({"en": {"title": "Done", "body": "Call 400-800-1234."}}) == {}


def test_outage_starter_fills_each_language_and_the_settings(app, users) -> None:
    settings.save_contact(phone="400-123-4567", email="care@example.com",
                          actor=users[Role.ADMIN])
    event = make_event(title="CRM 故障 / CRM outage")
    event.title_zh, event.title_en = "CRM 系统故障", "CRM outage"
    values = {locale: {"event_title": event.title_in(locale), **settings.contact_details()}
              for locale in ("zh_CN", "en")}
    filled = content.starter("outage", values)
    assert filled["zh_CN"]["title"].startswith("CRM 系统故障：")
    assert filled["en"]["title"].startswith("CRM outage:")
    for entry in filled.values():
        assert "400-123-4567" in entry["body"] and "care@example.com" in entry["body"]
        assert "400-800-1234" not in entry["body"] and "withdrawal" not in entry["body"]
        assert "出金" not in entry["body"]
    # Only the time of resolution is left for the drafter, and it blocks the sign-off.
    assert content.unfilled_placeholders(filled) == {
        "body_zh_CN": ["{{ resolution_time }}"], "body_en": ["{{ resolution_time }}"]}


def test_contact_settings_are_checked_and_audited(app, users) -> None:
    assert settings.contact_details()["contact_phone"] == app.config["PORTAL_CONTACT_PHONE"]
    with pytest.raises(settings.InvalidContact) as refused:
        settings.save_contact(phone="call us", email="nobody", actor=users[Role.ADMIN])
    assert set(refused.value.errors) == {"contact_phone", "contact_email"}
    assert settings.save_contact(phone="+86 (10) 1234 5678", email="care@example.com",
                                 actor=users[Role.ADMIN]) == 2
    assert settings.contact_details() == {"contact_phone": "+86 (10) 1234 5678",
                                          "contact_email": "care@example.com"}
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "settings.notice_contact")) == 2
    assert settings.save_contact(phone="+86 (10) 1234 5678", email="care@example.com",
                                 actor=users[Role.ADMIN]) == 0


def test_inline_difference_marks_single_chinese_characters_and_english_words() -> None:
    old, new = inline("预计于今日 18:00 前恢复。", "预计于今日 20:30 前恢复。")
    assert [t for op, t in old if op == "del"] == ["18", "00"]
    assert [t for op, t in new if op == "ins"] == ["20", "30"]
    old, new = inline("我们正在全力处理。", "我们正在尽力处理。")
    assert old == [("same", "我们正在"), ("del", "全"), ("same", "力处理。")]
    assert new == [("same", "我们正在"), ("ins", "尽"), ("same", "力处理。")]
    old, new = inline("We expect to restore them by noon.", "We expect to restore them by 6 pm.")
    assert [t for op, t in old if op == "del"] == ["noon"]
    assert [t for op, t in new if op == "ins"] == ["6 pm"]
    rows = side_by_side("标题\n\n第一段。\n第二段。", "标题\n\n第一段！\n第二段。")
    assert [r.kind for r in rows] == ["equal", "equal", "changed", "equal"]
    # Text with no likeness is replaced whole, not shredded.
    assert inline("完全不同", "Something else") == ([("del", "完全不同")],
                                                   [("ins", "Something else")])


def test_last_approved_version_is_the_one_legal_granted_before(users) -> None:
    notice = make_notice(users)
    assert last_approved_before(notice.latest_version) is None
    publish(notice, users)
    first = notice.latest_version
    for number in (2, 3):  # version 2 is rejected, version 3 is under review
        notices.save(notice, content={"zh_CN": {**ZH, "body": f"第 {number} 稿"}},
                     audience="public", planned_publish_at=None, based_on=number - 1,
                     actor=users[Role.AGENT])
        request = notices.request_signoff(notice, actor=users[Role.AGENT])
        if number == 2:
            signoffs.decide(request.id, "rejected", "No", actor=users[Role.LEGAL])
    assert last_approved_before(notice.latest_version) == first
