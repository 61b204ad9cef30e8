"""Post-mortems (复盘): six steps saved and audited, blameless causes, live facts from the
event, optimistic locking, legal sign-off, and the PDF through a real worker."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal import documents
from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import services as cases
from portal.customers import services as customers
from portal.errors import Conflict, RuleViolation
from portal.extensions import db
from portal.mailings.models import Mailing, MailingRecipient
from portal.models import utcnow
from portal.names import first_mentioned
from portal.postmortems import pdf, services
from portal.postmortems.models import Postmortem, PostmortemPdf
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from tests.case_helpers import make_case, make_customer, second_agent
from tests.notice_helpers import make_event, make_notice, pdf_text_and_fonts, publish

TEXTS = {
    "goals": "Restore withdrawals within **4 hours** and tell every customer.",
    "narrative": "The CRM database ran out of connections at 09:12.",
    "result": "Withdrawals were back after 3 hours; 2 customers were not reached.",
    "causes": "The connection pool had no upper bound and no alert.",
    "lessons": "Bound the pool; alert at 80 %.",
    "conclusion": "Filed as INC-42.",
}


def _form(postmortem: Postmortem, **changes: str) -> dict[str, str]:
    return {**postmortem.texts(), "lock_version": str(postmortem.lock_version), **changes}


def _entries(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_get_creates_nothing_and_the_start_form_does(app, client, auth, users) -> None:
    event = make_event()
    auth.login(Role.AGENT)
    page = client.get(f"/postmortems/event/{event.id}")
    assert page.status_code == 200 and "Start the post-mortem" in page.text
    assert db.session.scalar(select(func.count(Postmortem.id))) == 0
    assert client.post(f"/postmortems/event/{event.id}/start").status_code == 302
    assert client.post(f"/postmortems/event/{event.id}/start").status_code == 302  # once only
    assert db.session.scalar(select(func.count(Postmortem.id))) == 1
    assert len(_entries("postmortem.start")) == 1
    auth.logout()
    auth.login(Role.LEGAL)
    page = client.get(f"/postmortems/event/{event.id}")
    assert page.status_code == 200 and "Start the post-mortem" not in page.text
    assert client.post(f"/postmortems/event/{event.id}/save", data=TEXTS).status_code == 403


def test_six_steps_are_saved_audited_and_rendered_sanitised(app, client, auth, users) -> None:
    event = make_event()
    postmortem = services.start(event, actor=users[Role.AGENT])
    auth.login(Role.AGENT)
    texts = {**TEXTS, "conclusion": "Filed as INC-42. <script>alert(1)</script>"}
    response = client.post(f"/postmortems/event/{event.id}/save", data=_form(postmortem, **texts))
    assert response.status_code == 302, response.text
    db.session.expire_all()
    postmortem = db.session.get(Postmortem, postmortem.id)
    assert postmortem.texts() == {k: v.strip() for k, v in texts.items()}
    assert postmortem.lock_version == 2 and postmortem.updated_by_id == users[Role.AGENT].id
    [entry] = _entries("postmortem.edit")
    assert entry.subject_type == "postmortem" and entry.subject_id == str(postmortem.id)
    # The trail keeps each step's hash, not a second copy of the text.
    assert entry.after["causes"] == hashlib.sha256(TEXTS["causes"].encode()).hexdigest()
    assert entry.before["causes"] == "" and TEXTS["causes"] not in json.dumps(entry.after)
    assert entry.actor_id == users[Role.AGENT].id
    # Saving the same text again changes nothing and records nothing.
    assert client.post(f"/postmortems/event/{event.id}/save",
                       data=_form(postmortem)).status_code == 302
    assert len(_entries("postmortem.edit")) == 1
    auth.logout()
    auth.login(Role.LEGAL)  # legal reads the rendered steps
    page = client.get(f"/postmortems/event/{event.id}")
    assert "<strong>4 hours</strong>" in page.text and "<script>alert" not in page.text
    assert "回顾目标" in page.text and "Analyse the causes" in page.text
    assert 'name="causes"' not in page.text  # no editor for legal


def test_no_step_may_carry_customer_data(app, users) -> None:
    event = make_event()
    customer = customers.create_customer(event, {"external_ref": "K-7", "name": "Zhou Min",
                                                 "email": "zhou.min@example.com"},
                                         actor=users[Role.AGENT])
    postmortem = services.start(event, actor=users[Role.AGENT])
    db.session.commit()
    with pytest.raises(RuleViolation) as err:
        services.update(postmortem, {**TEXTS, "narrative": f"We called {customer.email}."},
                        expected_version=postmortem.lock_version, actor=users[Role.AGENT])
    assert err.value.field == "narrative"
    db.session.rollback()
    assert db.session.get(Postmortem, postmortem.id).narrative == ""


@pytest.mark.parametrize("mention", [
    "Agent Tester forgot to raise the pool limit.",           # a staff member's name
    "A config change by ADMIN@example.com at 09:00.",          # a staff e-mail, any case
    "客户王芳的请求触发了重试风暴。",                              # a customer of the event
])
def test_blameless_check_refuses_people_and_changes_nothing(app, client, auth, users,
                                                            mention) -> None:
    event = make_event()
    make_customer(users, event=event)  # 王芳
    postmortem = services.start(event, actor=users[Role.AGENT])
    services.update(postmortem, TEXTS, expected_version=1, actor=users[Role.AGENT])
    edits = len(_entries("postmortem.edit"))
    db.session.commit()
    with pytest.raises(RuleViolation) as refused:
        services.update(postmortem, {**TEXTS, "causes": mention, "goals": "changed"},
                        expected_version=2, actor=users[Role.AGENT])
    assert refused.value.field == "causes"
    db.session.rollback()
    auth.login(Role.AGENT)
    response = client.post(f"/postmortems/event/{event.id}/save",
                           data=_form(postmortem, causes=mention, goals="changed"))
    assert response.status_code == 422
    assert 'id="causes-error"' in response.text and "blameless" in response.text
    assert "Blameless: describe what happened" in response.text  # the reminder next to it
    assert mention.split()[0] in response.text  # the editor keeps what was typed
    # A boosted (htmx) form gets the same page with a 200, since htmx swaps only 2xx.
    boosted = client.post(f"/postmortems/event/{event.id}/save",
                          data=_form(postmortem, causes=mention),
                          headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert boosted.status_code == 200 and boosted.headers["HX-Push-Url"] == "false"
    assert 'id="causes-error"' in boosted.text
    db.session.expire_all()
    postmortem = db.session.get(Postmortem, postmortem.id)
    assert postmortem.causes == TEXTS["causes"] and postmortem.goals == TEXTS["goals"]
    assert postmortem.lock_version == 2 and len(_entries("postmortem.edit")) == edits


def test_blameless_check_matches_whole_names_only(app, users) -> None:
    assert first_mentioned("The client library retried.", ["Li"]) is None
    assert first_mentioned("Li restarted it.", ["Li"]) == "Li"
    assert first_mentioned("mail to bob@example.com.", ["bob@example.com"])
    assert first_mentioned("mail to jimbob@example.com", ["bob@example.com"]) is None
    assert first_mentioned("王芳的订单", ["王芳"]) == "王芳"
    event = make_event()
    make_customer(users, event=event)  # another event's customers do not count
    other = make_event(title="Other")
    services.check_blameless("王芳的订单", other.id)


def test_facts_match_hand_computed_numbers(app, users) -> None:
    event = make_event()
    customer = make_customer(users, event=event)
    other_customer = make_customer(users, ref="K-2", event=event, email="b@example.com")
    # CNY: 100.10 approved and paid; 250.25 new. EUR: 0.10 + 0.20 (no float drift).
    paid = make_case(users, "100.10", "CNY", customer=customer, order_ref="O-1")
    cases.change_status(paid, "start", actor=users[Role.AGENT])
    cases.propose(paid, actor=users[Role.AGENT])
    cases.approve(paid, actor=second_agent())
    cases.record_payment(paid, amount="100.10", payout_ref="PAY-0001", actor=users[Role.AGENT])
    make_case(users, "250.25", "CNY", customer=customer, order_ref="O-2")
    make_case(users, "0.10", "EUR", customer=other_customer, order_ref="O-3")
    eur = make_case(users, "0.20", "EUR", customer=other_customer, order_ref="O-4")
    cases.change_status(eur, "start", actor=users[Role.AGENT])
    # Two published notices (the public one first), a draft that does not count.
    first = make_notice(users, event=event)
    publish(first, users)
    publish(make_notice(users, event=event, audience="direct"), users)
    make_notice(users, event=event)
    # A started mailing: 2 sent, 1 failed, 1 pending; a draft mailing does not count.
    mailing = Mailing(event_id=event.id, notice_id=first.id, version_id=first.latest_version.id,
                      status="sending", started_at=utcnow())
    draft = Mailing(event_id=event.id, notice_id=first.id, version_id=first.latest_version.id)
    db.session.add_all([mailing, draft])
    db.session.flush()
    for n, status in enumerate(["sent", "sent", "failed", "pending"]):
        extra = make_customer(users, ref=f"M-{n}", event=event, email=f"m{n}@example.com")
        db.session.add(MailingRecipient(mailing_id=mailing.id, customer_id=extra.id,
                                        email=extra.email, locale="zh_CN", status=status))
    db.session.commit()

    found = services.facts(event)
    assert found.cases_by_status == {"new": 2, "in_progress": 1, "paid": 1}
    money = {line.currency: line for line in found.money}
    assert list(money) == ["CNY", "EUR"]
    assert money["CNY"].proposed == Decimal("350.35")
    assert money["CNY"].approved == Decimal("100.10") and money["CNY"].paid == Decimal("100.10")
    assert money["EUR"].proposed == Decimal("0.30")
    assert money["EUR"].approved == Decimal("0.00") and money["EUR"].paid == Decimal("0.00")
    assert all(isinstance(v, Decimal) for line in found.money
               for v in (line.proposed, line.approved, line.paid))
    assert found.notices_published == 2
    db.session.refresh(first)
    assert found.first_published_at == first.first_published_at
    assert found.first_public_at == first.first_published_at
    assert found.time_to_first_public_notice == first.first_published_at - event.created_at
    assert (found.mailings, found.recipients_sent, found.recipients_failed) == (1, 2, 1)
    assert found.timeline[0].action == "event.create"
    assert found.timeline == sorted(found.timeline, key=lambda e: e.id)
    summary = found.summary()
    assert summary["money"]["CNY"] == {"proposed": "350.35", "approved": "100.10",
                                       "paid": "100.10"}
    assert summary["first_public_notice_after_minutes"] == 0


def test_facts_are_shown_beside_the_editor(app, client, auth, users) -> None:
    event = make_event()
    make_case(users, "99.99", "USD", customer=make_customer(users, event=event))
    services.start(event, actor=users[Role.AGENT])
    auth.login(Role.AGENT)
    page = client.get(f"/postmortems/event/{event.id}")
    assert 'id="pm-facts"' in page.text and "99.99" in page.text and "USD" in page.text
    assert 'name="causes"' in page.text and "Blameless: describe what happened" in page.text
    partial = client.get(f"/postmortems/event/{event.id}/facts", headers={"HX-Request": "true"})
    assert 'id="pm-facts"' in partial.text and "<html" not in partial.text


def test_two_editors_do_not_overwrite_each_other(app, client, auth, users) -> None:
    event = make_event()
    postmortem = services.start(event, actor=users[Role.AGENT])
    loaded = _form(postmortem)  # both editors loaded version 1
    services.update(postmortem, {**TEXTS}, expected_version=1, actor=users[Role.ADMIN])
    db.session.commit()
    with pytest.raises(Conflict):
        services.update(postmortem, {**TEXTS, "goals": "mine"}, expected_version=1,
                        actor=users[Role.AGENT])
    db.session.rollback()
    auth.login(Role.AGENT)
    response = client.post(f"/postmortems/event/{event.id}/save",
                           data={**loaded, "goals": "the agent's version"})
    assert response.status_code == 422 and "Someone else saved" in response.text
    assert "the agent&#39;s version" in response.text  # not lost from the form
    db.session.expire_all()
    postmortem = db.session.get(Postmortem, postmortem.id)
    assert postmortem.goals == TEXTS["goals"] and postmortem.lock_version == 2
    assert len(_entries("postmortem.edit")) == 1


def test_a_stale_copy_loses_at_the_database(app, users) -> None:
    """Without the form's version: the version column itself refuses the stale UPDATE."""
    event = make_event()
    postmortem = services.start(event, actor=users[Role.AGENT])
    assert postmortem.lock_version == 1  # loaded; now another editor saves in between
    db.session.execute(Postmortem.__table__.update().values(lock_version=2))
    with pytest.raises(Conflict):
        services.update(postmortem, TEXTS, expected_version=None, actor=users[Role.AGENT])


def test_legal_signs_off_and_an_edit_voids_it(app, client, auth, users) -> None:
    event = make_event()
    postmortem = services.start(event, actor=users[Role.AGENT])
    services.update(postmortem, TEXTS, expected_version=1, actor=users[Role.ADMIN])
    auth.login(Role.AGENT)
    assert client.post(f"/postmortems/event/{event.id}/request-signoff").status_code == 302
    request = signoffs.latest(services.SUBJECT, postmortem.id)
    assert request.status == "pending" and request.requested_by_id == users[Role.AGENT].id
    assert request.author_id == users[Role.ADMIN].id
    assert request.snapshot == {"steps": TEXTS,
                                "facts": services.facts(event).summary()}
    with pytest.raises(RuleViolation):  # asking twice for the same content
        services.request_signoff(postmortem, actor=users[Role.AGENT])
    db.session.rollback()
    # Neither the requester nor the author decides.
    for who in (Role.AGENT, Role.ADMIN):
        with pytest.raises(RuleViolation):
            signoffs.decide(request.id, "approved", "", actor=users[who])
        db.session.rollback()
    auth.logout()
    auth.login(Role.LEGAL)
    queue = client.get("/signoffs/?kind=postmortem")
    assert queue.status_code == 200 and "Post-mortem" in queue.text and event.title in queue.text
    page = client.get(f"/signoffs/{request.id}")
    assert page.status_code == 200
    assert "回顾目标" in page.text and "<strong>4 hours</strong>" in page.text
    assert "Record decision" in page.text
    response = client.post(f"/signoffs/{request.id}/decide",
                           data={"decision": "approved", "comment": ""})
    assert response.status_code == 302
    db.session.expire_all()
    assert signoffs.granted(services.SUBJECT, postmortem.id).id == request.id
    assert services.signoff_state(postmortem).granted
    assert len(_entries("postmortem.signoff_approved")) == 1
    # Any edit voids the grant: legal approved the old text.
    postmortem = db.session.get(Postmortem, postmortem.id)
    services.update(postmortem, {**TEXTS, "lessons": "Bound the pool; alert at 70 %."},
                    expected_version=postmortem.lock_version, actor=users[Role.AGENT])
    db.session.expire_all()
    request = db.session.get(SignoffRequest, request.id)
    assert request.status == "voided" and request.void_reason == "post-mortem edited"
    assert not services.signoff_state(postmortem).binding
    # A new request is possible again, and editing voids a pending one too.
    pending = services.request_signoff(postmortem, actor=users[Role.AGENT])
    services.update(postmortem, TEXTS, expected_version=postmortem.lock_version,
                    actor=users[Role.AGENT])
    assert db.session.get(SignoffRequest, pending.id).status == "voided"


def test_a_grant_the_facts_moved_away_from_is_replaced(app, users) -> None:
    event = make_event()
    customer = make_customer(users, event=event)
    postmortem = services.start(event, actor=users[Role.AGENT])
    services.update(postmortem, TEXTS, expected_version=1, actor=users[Role.AGENT])
    request = services.request_signoff(postmortem, actor=users[Role.AGENT])
    make_case(users, "10.00", "CNY", customer=customer)  # the facts change
    db.session.commit()
    with pytest.raises(RuleViolation, match="changed since the request"):
        signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    db.session.rollback()
    again = services.request_signoff(postmortem, actor=users[Role.AGENT])
    assert db.session.get(SignoffRequest, request.id).status == "voided"
    signoffs.decide(again.id, "approved", "", actor=users[Role.LEGAL])
    assert services.signoff_state(postmortem).granted



@pytest.mark.integration
def test_pdf_through_the_worker_with_legal_stamp(app, client, auth, users, run_worker,
                                                 tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    event = make_event(title="CRM 系统故障 六月")
    make_case(users, "100.10", "CNY", customer=make_customer(users, event=event))
    postmortem = services.start(event, actor=users[Role.AGENT])
    services.update(postmortem, TEXTS, expected_version=1, actor=users[Role.AGENT])
    request = services.request_signoff(postmortem, actor=users[Role.AGENT])
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    auth.login(Role.LEGAL)  # legal may make the PDF too
    response = client.post(f"/postmortems/event/{event.id}/pdf")
    assert response.status_code == 302
    status_url = response.headers["Location"]
    polling = client.get(status_url, headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in polling.text and "<html" not in polling.text
    run_worker()
    row = db.session.scalar(select(PostmortemPdf))
    assert row.status == "done", row.error
    assert row.signoff_id == request.id and row.lock_version == postmortem.lock_version
    text, fonts = pdf_text_and_fonts(tmp_path / "pdf" / f"{row.sha256}.pdf")
    assert "CRM 系统故障 六月" in text
    assert "回顾目标" in text and "分析原因" in text
    assert "Restore withdrawals" in text and "100.10" in text
    assert request.snapshot_hash[:12] in text and "法务部已审批" in text  # legal's stamp
    assert "Legal Tester" not in text  # by default it names the department, not the person
    assert "Noto-Sans-CJK-SC" in fonts or "NotoSansCJK" in fonts
    done = client.get(status_url, headers={"HX-Request": "true"})
    assert "every 1s" not in done.text and "Download PDF" in done.text
    file = client.get(f"/postmortems/pdfs/{row.id}/file")
    assert file.status_code == 200 and file.mimetype == "application/pdf"
    # Running the job again changes nothing; asking again reuses the row.
    assert documents.render_document_job(pdf.PIPELINE.name, row.id) == row.sha256
    assert services.request_pdf(postmortem, actor=users[Role.AGENT]).id == row.id
    assert len(list((tmp_path / "pdf").glob("*.pdf"))) == 1
    # The detail page shows the latest PDF.
    assert "Download PDF" in client.get(f"/postmortems/event/{event.id}").text
    # The admin setting: PDFs rendered afterwards name the approver.
    from portal.signoffs import stamp

    stamp.set_stamp_mode(stamp.APPROVER, actor=users[Role.ADMIN])
    with app.test_request_context():
        named = pdf.render_pdf(row, stamp.stamp_for(row.signoff), services.facts(event))
    (tmp_path / "named.pdf").write_bytes(named)
    assert "Approved by legal: Legal Tester" in pdf_text_and_fonts(tmp_path / "named.pdf")[0]


@pytest.mark.integration
def test_pdf_of_text_edited_meanwhile_fails_and_lost_jobs_are_requeued(
        app, users, run_worker, tmp_path) -> None:
    from redis import Redis

    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    event = make_event()
    postmortem = services.start(event, actor=users[Role.AGENT])
    services.update(postmortem, TEXTS, expected_version=1, actor=users[Role.AGENT])
    row = services.request_pdf(postmortem, actor=users[Role.AGENT])
    assert row.signoff_id is None
    services.update(postmortem, {**TEXTS, "goals": "new"}, expected_version=2,
                    actor=users[Role.AGENT])
    assert documents.render_document_job(pdf.PIPELINE.name, row.id) is None
    row = db.session.get(PostmortemPdf, row.id)
    assert row.status == "failed" and "edited after" in row.error
    # A fresh row for the new text; Redis loses its job; the reconciler queues it again.
    fresh = services.request_pdf(postmortem, actor=users[Role.AGENT])
    assert fresh.id != row.id and fresh.lock_version == 3
    pdf.PIPELINE.queue(fresh.id)
    Redis.from_url(app.config["REDIS_URL"]).flushall()
    assert pdf.PIPELINE.requeue_lost(timedelta(0)) == 1
    run_worker()
    assert db.session.get(PostmortemPdf, fresh.id).status == "done"



def test_a_post_mortem_started_meanwhile_elsewhere_is_the_one_returned(app, users,
                                                                        monkeypatch) -> None:
    """Two leads starting the post-mortem at once (two portals): the check saw none, the
    other committed first. The unique event_id refuses this insert, and the other's
    post-mortem is returned; the transaction still works (it was a 500)."""
    event = make_event()
    db.session.commit()
    real_check = services.for_event

    def check_then_the_other_commits(checked):
        found = real_check(checked)
        assert found is None
        now = utcnow()
        with db.engine.begin() as conn:
            conn.execute(Postmortem.__table__.insert().values(
                event_id=checked.id, created_by_id=users[Role.ADMIN].id, created_at=now,
                updated_by_id=users[Role.ADMIN].id, updated_at=now))
        monkeypatch.setattr(services, "for_event", real_check)
        return found

    monkeypatch.setattr(services, "for_event", check_then_the_other_commits)
    postmortem = services.start(event, actor=users[Role.AGENT])
    assert postmortem.created_by_id == users[Role.ADMIN].id
    assert db.session.scalar(select(func.count(Postmortem.id))) == 1
    db.session.rollback()
