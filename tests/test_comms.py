"""The update cadence: the admin's minutes per severity (validated, audited), the event's
communications lead, the clock that a published update resets, the lead's reminders through a
real RQ worker and the real SMTP server (once per due time), what the event page and the
dashboard show; and the communication metrics on known data, with their CSV in both
languages."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.auth import services as auth_services
from portal.comms import metrics, services, tasks
from portal.comms import settings as cadence_settings
from portal.comms.models import CadenceReminder, ReminderStatus
from portal.events import services as events
from portal.events.models import EventStatus
from portal.extensions import db
from portal.mail.devsmtp import read_messages
from portal.mailings import services as mailings
from portal.models import utcnow
from portal.notices import publishing
from portal.notices import services as notices
from portal.notices.models import Notice, Publication
from portal.signoffs.models import SignoffRequest
from tests.notice_helpers import approve, make_event, make_notice, publish
from tests.test_mailings import add_customers, draft

SETTINGS = "/events/settings/cadence"


def _publish_update(notice: Notice, users, now=None) -> Publication:
    """A new version of a published notice, approved by legal and published (at ``now``)."""
    n = notice.latest_version.number + 1
    notices.save(notice, content={"zh_CN": {"title": f"更新 {n}", "body": "恢复中"},
                                  "en": {"title": f"Update {n}", "body": "Recovering"}},
                 audience="public", planned_publish_at=None,
                 based_on=notice.latest_version.number, actor=users[Role.AGENT])
    approve(notice, users)
    return publishing.publish(notice, actor=users[Role.AGENT], now=now)


def _published_event(users, severity: str = "sev1", title: str = "CRM 系统故障"):
    event = make_event(severity, title=title)
    notice = make_notice(users, event)
    publish(notice, users)
    return event, notice


def _age(notice: Notice, minutes: int) -> None:
    """Move the notice's publications ``minutes`` into the past (known history)."""
    for publication in notice.publications:
        publication.published_at -= timedelta(minutes=minutes)
    db.session.commit()


# ---------------------------------------------------------------------------- settings

def test_cadence_defaults_and_bad_input_changes_nothing(app, users, auth, client) -> None:
    assert cadence_settings.cadence() == {"sev1": 60, "sev2": 120, "sev3": 240, "sev4": 0}
    auth.login(Role.AGENT)
    assert client.get(SETTINGS).status_code == 403
    auth.logout()
    auth.login(Role.ADMIN)
    page = client.get(SETTINGS)
    assert page.status_code == 200 and 'name="cadence_sev1"' in page.text
    bad = client.post(SETTINGS, data={"cadence_sev1": "30", "cadence_sev2": "ten",
                                      "cadence_sev3": "5", "cadence_sev4": ""},
                      headers={"Accept-Language": "en"})
    assert bad.status_code == 422
    assert 'id="cadence_sev2-error"' in bad.text and "Enter whole minutes" in bad.text
    assert 'id="cadence_sev3-error"' in bad.text and "Between 16 and 1440 minutes" in bad.text
    assert 'value="ten"' in bad.text  # what was typed stays, next to its message
    assert cadence_settings.cadence()["sev1"] == 60  # all or nothing: sev1 not saved either
    assert db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "settings.cadence")) is None


def test_cadence_errors_in_chinese(app, users, auth, client) -> None:
    users[Role.ADMIN].locale = "zh_CN"
    db.session.commit()
    auth.login(Role.ADMIN)
    bad = client.post(SETTINGS, data={"cadence_sev1": "-1", "cadence_sev2": "99999",
                                      "cadence_sev3": "240", "cadence_sev4": "0"})
    assert bad.status_code == 422
    assert "请输入整数分钟" in bad.text and "须在 16 至 1440 分钟之间" in bad.text


def test_saving_the_cadence_is_audited_per_change(app, users, auth, client) -> None:
    auth.login(Role.ADMIN)
    ok = client.post(SETTINGS, data={"cadence_sev1": "30", "cadence_sev2": "120",
                                     "cadence_sev3": "", "cadence_sev4": "480"})
    assert ok.status_code == 302
    assert cadence_settings.cadence() == {"sev1": 30, "sev2": 120, "sev3": 0, "sev4": 480}
    entries = db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == "settings.cadence").order_by(AuditEntry.id)).all()
    assert [(e.subject_id, e.before, e.after) for e in entries] == [
        ("cadence:sev1", {"minutes": 60}, {"minutes": 30}),
        ("cadence:sev3", {"minutes": 240}, {"minutes": 0}),
        ("cadence:sev4", {"minutes": 0}, {"minutes": 480})]
    again = client.post(SETTINGS, data={"cadence_sev1": "30", "cadence_sev2": "120",
                                        "cadence_sev3": "0", "cadence_sev4": "480"})
    assert again.status_code == 302
    assert db.session.scalar(select(AuditEntry.id).where(
        AuditEntry.action == "settings.cadence").order_by(AuditEntry.id.desc())) == entries[-1].id


# ---------------------------------------------------------------------------- the lead

def test_the_lead_is_an_active_agent_or_admin_and_audited(app, users, auth, client) -> None:
    event = make_event()
    db.session.commit()
    url = f"/events/{event.id}/communications-lead"
    auth.login(Role.LEGAL)
    assert client.post(url, data={"lead_id": users[Role.AGENT].id}).status_code == 403
    auth.logout()
    auth.login(Role.AGENT)
    refused = client.post(url, data={"lead_id": users[Role.FINANCE].id},
                          headers={"Accept-Language": "en"})
    assert refused.status_code == 422 and "Choose an active agent or admin." in refused.text
    db.session.expire_all()
    assert event.comms_lead_id is None
    ok = client.post(url, data={"lead_id": users[Role.ADMIN].id})
    assert ok.status_code == 302
    db.session.expire_all()
    assert event.comms_lead_id == users[Role.ADMIN].id
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "event.comms_lead"))
    assert entry.subject_id == str(event.id)
    assert entry.after == {"comms_lead_id": users[Role.ADMIN].id}
    # The page names the lead; htmx gets the section back.
    partial = client.post(url, data={"lead_id": users[Role.AGENT].id},
                          headers={"HX-Request": "true", "HX-Target": "communications"})
    assert partial.status_code == 200 and 'id="communications"' in partial.text
    assert "<html" not in partial.text and users[Role.AGENT].name in partial.text
    users[Role.ADMIN].active = False
    db.session.commit()
    left = client.post(url, data={"lead_id": users[Role.ADMIN].id})
    assert left.status_code == 422


# ---------------------------------------------------------------------------- the clock

def test_publishing_an_update_resets_the_clock(app, users) -> None:
    event, notice = _published_event(users, "sev1")
    first = notice.publications[0].published_at
    running = services.clock(event, first + timedelta(minutes=30))
    assert running.due_at == first + timedelta(minutes=60)
    assert not running.overdue and not running.soon and running.delta_minutes == 30
    assert services.clock(event, first + timedelta(minutes=50)).soon
    late = services.clock(event, first + timedelta(minutes=75))
    assert late.overdue and late.delta_minutes == 15
    update_at = first + timedelta(minutes=80)
    _publish_update(notice, users, now=update_at)
    reset = services.clock(event, update_at + timedelta(minutes=1))
    assert reset.due_at == update_at + timedelta(minutes=60) and not reset.overdue
    # No clock for a severity without cadence, a phase after handling, or no public notice.
    sev4, _n = _published_event(users, "sev4")
    assert services.clock(sev4) is None
    events.change_status(event, "handling", actor=users[Role.ADMIN])
    assert services.clock(event) is not None
    events.change_status(event, "reviewing", actor=users[Role.ADMIN])
    assert services.clock(event) is None
    assert services.clock(make_event("sev1")) is None


# ---------------------------------------------------------------------------- reminders

@pytest.fixture
def mail(app, smtp_server):
    app.config.update(SMTP_HOST=smtp_server["host"], SMTP_PORT=smtp_server["port"])
    return lambda: read_messages(smtp_server["dir"])


def test_the_lead_is_reminded_once_before_and_once_when_overdue_per_due_time(
        app, users, mail, run_worker, monkeypatch, auth, client) -> None:
    english, chinese = users[Role.AGENT], users[Role.ADMIN]
    english.locale, chinese.locale = "en", "zh_CN"
    event, notice = _published_event(users, "sev1", title="CRM outage")
    services.set_lead(event, english.id, actor=chinese)
    other, _other_notice = _published_event(users, "sev2", title="支付故障")
    services.set_lead(other, chinese.id, actor=chinese)
    quiet, _quiet_notice = _published_event(users, "sev1", title="No lead")  # nobody to tell
    db.session.commit()
    start = notice.publications[0].published_at

    def run_at(minutes: float) -> list:
        moment = start + timedelta(minutes=minutes)
        monkeypatch.setattr(tasks, "utcnow", lambda: moment)
        assert tasks.queue_cadence()
        run_worker()
        return mail()

    assert run_at(30) == []  # not due within 15 minutes yet
    [soon] = run_at(46)
    assert soon["To"] == english.email and "Public update due at" in soon["Subject"]
    assert "CRM outage" in soon["Subject"] and f"/events/{event.id}" in soon.get_content()
    assert len(run_at(50)) == 1  # sent once
    messages = run_at(61)
    assert len(messages) == 2 and "Public update overdue since" in messages[-1]["Subject"]
    assert len(run_at(70)) == 2
    # The sev2 event (due after 120 min) reminds its lead in Chinese.
    messages = run_at(106)
    [zh] = [m for m in messages if m["To"] == chinese.email]
    assert "公开更新应于" in zh["Subject"] and "对外沟通负责人" in zh.get_content()
    # An update resets the clock: the next due time gets its own reminders.
    _publish_update(notice, users, now=start + timedelta(minutes=107))
    db.session.commit()
    assert len(run_at(110)) == 3
    messages = run_at(107 + 46)
    assert len([m for m in messages if m["To"] == english.email]) == 3
    rows = db.session.scalars(select(CadenceReminder).where(
        CadenceReminder.event_id == event.id).order_by(CadenceReminder.id)).all()
    assert [(r.kind, r.status) for r in rows] == [
        ("due_soon", ReminderStatus.SENT), ("overdue", ReminderStatus.SENT),
        ("due_soon", ReminderStatus.SENT)]
    assert len({m["Message-ID"] for m in messages}) == len(messages)
    # The event without a lead: nothing was sent ("due soon" passed); the lead named late
    # gets the overdue reminder on the next run, once.
    assert [(r.kind, r.status) for r in db.session.scalars(select(CadenceReminder).where(
        CadenceReminder.event_id == quiet.id))] == [("due_soon", ReminderStatus.SKIPPED)]
    services.set_lead(quiet, chinese.id, actor=chinese)
    db.session.commit()
    late = [m for m in run_at(107 + 47) if m["To"] == chinese.email]
    assert "公开更新自" in late[-1]["Subject"] and "No lead" in late[-1]["Subject"]
    assert len([m for m in run_at(107 + 48) if m["To"] == chinese.email]) == len(late)
    # The event page lists what was sent.
    auth.login(Role.AGENT)
    reminders = client.get(f"/events/{event.id}").text
    reminders = reminders[reminders.index('id="cadence-reminders"'):]
    assert reminders.count("Update due soon") == 2 and reminders.count("Update overdue") == 1
    assert reminders.count("Sent") == 3


# ---------------------------------------------------------------------------- pages

def test_overdue_shows_on_the_event_page_and_the_dashboard(app, users, auth, client) -> None:
    late, late_notice = _published_event(users, "sev1", title="CRM 系统故障")
    services.set_lead(late, users[Role.AGENT].id, actor=users[Role.ADMIN])
    _age(late_notice, 90)  # published 90 minutes ago: 30 minutes overdue at sev1
    fine, _notice = _published_event(users, "sev3", title="短信延迟")
    db.session.commit()
    users[Role.AGENT].locale = "en"
    db.session.commit()
    auth.login(Role.AGENT)
    page = client.get(f"/events/{late.id}").text
    assert 'id="communications"' in page
    assert re.search(r"Next public update overdue by 3[01] min", page)
    assert users[Role.AGENT].name in page
    assert re.search(r"Next public update due in (3 h 59|4 h 00) min",
                     client.get(f"/events/{fine.id}").text)
    dashboard = client.get("/dashboard").text
    assert 'id="update-clocks"' in dashboard and "overdue by" in dashboard
    assert dashboard.index("CRM 系统故障") < dashboard.index("短信延迟")  # most urgent first
    users[Role.AGENT].locale = "zh_CN"
    db.session.commit()
    assert "下一次公开更新已逾期" in client.get(f"/events/{late.id}").text
    assert "待发布的公开更新" in client.get("/dashboard").text
    # An update published now: no longer overdue.
    _publish_update(late_notice, users)
    db.session.commit()
    assert "下一次公开更新已逾期" not in client.get(f"/events/{late.id}").text


# ---------------------------------------------------------------------------- metrics

def _known_history(users):
    """A sev1 incident opened at T: legal asked at T+10, decided at T+25 and the notice
    published then; the first mailing at T+60; updates at T+70 (45 min: on time) and T+200
    (130 min: late)."""
    event, notice = _published_event(users, "sev1", title="Known history")
    _publish_update(notice, users)
    _publish_update(notice, users)
    customers = add_customers(users, event, 1)
    mailing = draft(users, event, notice)
    mailings.start(mailing, actor=users[Role.AGENT])
    assert customers
    opened = utcnow() - timedelta(days=1)
    event.created_at = opened
    publications = sorted(notice.publications, key=lambda p: p.id)
    for publication, minutes in zip(publications, (25, 70, 200), strict=True):
        publication.published_at = opened + timedelta(minutes=minutes)
    first_request = db.session.get(SignoffRequest, publications[0].signoff_id)
    first_request.requested_at = opened + timedelta(minutes=10)
    first_request.decided_at = opened + timedelta(minutes=25)
    for publication in publications[1:]:  # the updates' reviews: 5 minutes each
        request = db.session.get(SignoffRequest, publication.signoff_id)
        request.requested_at = publication.published_at - timedelta(minutes=5)
        request.decided_at = publication.published_at
    mailing.started_at = opened + timedelta(minutes=60)
    db.session.commit()
    return event


def test_metrics_on_known_data(app, users) -> None:
    event = _known_history(users)
    empty = make_event("sev2", title="Nothing yet")
    empty.created_at = utcnow() - timedelta(hours=5)
    db.session.commit()
    [row, quiet] = metrics.for_events([event, empty])
    assert (row.to_first_notice, row.reviews, row.review_mean, row.to_first_mailing) == (
        25, 3, (15 + 5 + 5) // 3, 60)
    # T+70 on time, T+200 late, and the next (due at T+260, a day ago) is overdue now: late.
    assert (row.on_time, row.late) == (1, 2)
    assert {m: (t.minutes, t.state) for m, t in row.targets.items()} == {
        "first_notice": (30, "met"), "first_mailing": (120, "met")}
    # Five hours without a notice: sev2's 60 minutes are missed, its mailing's 240 too.
    assert quiet.to_first_notice is None and quiet.on_time == 0 and quiet.late == 0
    assert {m: t.state for m, t in quiet.targets.items()} == {
        "first_notice": "missed", "first_mailing": "missed"}
    by = {s.severity: s for s in metrics.by_severity([row, quiet])}
    assert (by["sev1"].events, by["sev1"].to_first_notice, by["sev1"].on_time,
            by["sev1"].late, by["sev1"].met, by["sev1"].missed) == (1, 25, 1, 2, 2, 0)
    assert (by["sev2"].events, by["sev2"].missed) == (1, 2)
    # Once the incident is resolved no update is owed: the overdue one is no longer counted.
    event.status = EventStatus.REVIEWING
    db.session.commit()
    assert (metrics.for_events([event])[0].on_time, metrics.for_events([event])[0].late) == (
        1, 1)
    # A tighter target turns the first notice's 25 minutes into a miss.
    events.set_targets({("sev1", "first_notice"): 20}, actor=users[Role.ADMIN])
    [row] = metrics.for_events([event])
    assert row.targets["first_notice"].state == "missed"


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def test_metrics_page_and_csv_in_both_languages(app, users, auth, client) -> None:
    event = _known_history(users)
    users[Role.LEGAL].locale = "en"
    db.session.commit()
    auth.login(Role.LEGAL)  # every member of staff reads the figures
    page = client.get("/events/communications").text
    assert f'data-event="{event.id}"' in page and "25 min" in page and "1 h 00 min" in page
    header, line = _csv(client.get("/events/communications.csv"))
    assert header[:7] == ["Event", "Title", "Kind", "Severity", "Opened",
                          "First public notice", "Minutes to first notice"]
    assert line[1:4] == ["Known history", "Incident", "Sev 1 (critical)"]
    assert line[6:9] == ["25", "30", "met"] and line[9:11] == ["3", "8"]
    assert line[12:15] == ["60", "120", "met"] and line[15:] == ["1", "2"]
    header, *severities = _csv(client.get("/events/communications-by-severity.csv"))
    assert header[:3] == ["Severity", "Events", "Mean minutes to first notice"]
    assert severities[0] == ["Sev 1 (critical)", "1", "25", "3", "8", "60", "1", "2", "2", "0"]
    assert [s[1] for s in severities[1:]] == ["0", "0", "0"]
    users[Role.LEGAL].locale = "zh_CN"
    db.session.commit()
    assert "25 分钟" in client.get("/events/communications").text
    header, line = _csv(client.get("/events/communications.csv"))
    assert "至首份公告的分钟数" in header and "按时更新" in header
    assert line[3] == "一级（特别重大）" and line[8] == "已达成" and line[14] == "已达成"
    header, first, *_rest = _csv(client.get("/events/communications-by-severity.csv"))
    assert "达成目标数" in header and first[:3] == ["一级（特别重大）", "1", "25"]
    auth.logout()
    assert client.get("/events/communications.csv").status_code in (302, 401)


def test_the_demo_incident_has_a_lead_and_figures(app) -> None:
    from portal.events.models import Event
    from portal.main import cli as demo

    demo.seed_demo()
    event = db.session.scalar(select(Event).where(Event.title.like("CRM%")))
    assert event.comms_lead is not None and event.comms_lead.role == Role.AGENT
    [row] = metrics.for_events([event])
    assert (row.to_first_notice, row.review_mean, row.to_first_mailing) == (25, 15, 60)
    assert {m: t.state for m, t in row.targets.items()} == {"first_notice": "met",
                                                            "first_mailing": "met"}
    assert services.clock(event).overdue


def test_a_reminder_for_a_reset_clock_is_not_sent(app, users, mail) -> None:
    event, notice = _published_event(users, "sev1")
    lead, _pw = auth_services.create_user("lead@example.com", "Lead", Role.AGENT, "x" * 12,
                                          must_change_password=False)
    services.set_lead(event, lead.id, actor=users[Role.ADMIN])
    start = notice.publications[0].published_at
    [row] = services.record_due_reminders(start + timedelta(minutes=50))
    db.session.commit()
    _publish_update(notice, users, now=start + timedelta(minutes=52))
    db.session.commit()
    assert tasks.deliver(row.id, start + timedelta(minutes=53)) is None
    db.session.expire_all()
    assert db.session.get(CadenceReminder, row.id).status == ReminderStatus.SKIPPED
    assert mail() == []
