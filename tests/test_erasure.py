"""Erasure: no free text carries a customer's data into the append-only audit trail, the
scrubber matches whole words (substrings for CJK names), and a batch of customers is erased
with the event-wide work done once."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta

from sqlalchemy import String, Text, func, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.types import JSON

from portal.accounts import Role
from portal.audit import services as audit
from portal.audit.models import AuditEntry
from portal.cases import services as cases
from portal.cases.models import Case, CaseNote
from portal.customers import services as customers
from portal.customers.models import Customer, ImportBatch
from portal.events import services as event_services
from portal.events.models import Event, TimelineEntry
from portal.extensions import db
from portal.lifecycle import erasure, retention
from portal.models import utcnow
from portal.names import Scrubber, first_mentioned, mentions
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from tests.notice_helpers import make_event

NAME = "张伟明"
EMAIL = "weiming.zhang@example.com"
PHONE = "+86 139 1234 5678"


def _import(users, event, rows: str) -> None:
    batch = customers.start_import(event, io.BytesIO(
        ("external_ref,name,email,phone\n" + rows).encode()), "customers.csv",
        actor=users[Role.AGENT])
    customers.validate_import(batch.id)
    customers.confirm_import(db.session.get(ImportBatch, batch.id), actor=users[Role.AGENT])
    customers.run_import(batch.id)


def _audit_text_columns() -> list[str]:
    return [c.name for c in AuditEntry.__table__.columns
            if isinstance(c.type, String | Text | JSON)]


def _raw_audit_values() -> list[str]:
    """Every text and JSON column of every audit row, as the database returns it as text."""
    columns = ", ".join(f"CAST({name} AS TEXT)" for name in _audit_text_columns())
    rows = db.session.execute(text(f"SELECT {columns} FROM audit_entry")).all()
    return [value for row in rows for value in row if value]


def _found_in_trail(needle: str) -> list[str]:
    # JSON may store non-ASCII text as \\u escapes: look for both spellings, in any case.
    forms = {needle.casefold(), json.dumps(needle)[1:-1].casefold()}
    return [v for v in _raw_audit_values() if any(f in v.casefold() for f in forms)]


def test_no_audit_column_holds_an_erased_customers_data_after_a_full_life(app, users) -> None:
    agent, legal, admin = users[Role.AGENT], users[Role.LEGAL], users[Role.ADMIN]
    event = make_event()
    event_services.update_event(event, title=event.title, severity=event.severity,
                                cause=event.cause, summary=f"{NAME} ({PHONE}) reported it first",
                                actor=agent)
    _import(users, event, f"K-1,{NAME},{EMAIL},{PHONE}\nK-2,李娜,li.na@example.com,\n")
    customer = db.session.scalar(select(Customer).where(Customer.external_ref == "K-1"))
    case = cases.open_case(customer, cases.CaseInput(
        "compensation", "O-77", "9800.00", "CNY", "other",
        f"{NAME} lost a withdrawal ({EMAIL})", None), actor=agent)
    cases.change_status(case, "start", actor=agent)
    cases.propose(case, actor=agent)
    signoffs.decide(case.signoff_id, "changes_requested",
                    f"Call {NAME} at {PHONE} first", actor=legal)  # returned: a step comment
    cases.propose(db.session.get(Case, case.id), actor=agent)
    signoffs.decide(db.session.get(Case, case.id).signoff_id, "approved",
                    f"Fine, {NAME} agreed by mail ({EMAIL})", actor=legal)
    cases.add_reply(db.session.get(Case, case.id), f"Dear {NAME}, we approved it.",
                    actor=agent)
    other = cases.open_case(customer, cases.CaseInput(
        "refund", "O-78", "10.00", "CNY", "other", "", None), actor=agent)
    cases.change_status(other, "reject", comment=f"{NAME} withdrew; wrote from {EMAIL}",
                        actor=agent)
    event_services.add_timeline_entry(event, occurred_at=None, text=f"{NAME} called",
                                      actor=agent)
    bodies = " ".join(db.session.scalars(select(CaseNote.body)))
    assert NAME in bodies and PHONE in bodies and EMAIL in bodies  # the life named them
    assert _found_in_trail(agent.email)  # the scan sees what the trail holds

    erasure.erase_on_request(customer, f"{NAME} asked by phone ({PHONE}), ticket 9",
                             actor=admin)

    assert "summary" in _audit_text_columns() and "after" in _audit_text_columns()
    for value in (NAME, EMAIL, PHONE, "weiming.zhang"):
        assert _found_in_trail(value) == [], value
    assert audit.verify_chain().ok
    # The texts stay on their rows, scrubbed, and the trail points at them.
    customer = db.session.get(Customer, customer.id)
    assert customer.erasure_reason == "[erased] asked by phone ([erased]), ticket 9"
    erase_entry = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "customer.erase"))
    assert erase_entry.after["reason_sha256"] == hashlib.sha256(
        customer.erasure_reason.encode()).hexdigest()
    rejected = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "case.rejected"))
    note = db.session.get(CaseNote, rejected.after["comment"]["note_id"])
    assert note.body == "[erased] withdrew; wrote from [erased]"
    approved = db.session.get(SignoffRequest, db.session.get(Case, case.id).signoff_id)
    assert approved.comment == "Fine, [erased] agreed by mail ([erased])"
    assert db.session.get(Event, event.id).summary == "[erased] ([erased]) reported it first"
    assert db.session.scalar(select(TimelineEntry.text)) == "[erased] called"


def test_comments_and_summaries_reach_the_trail_as_digests(app, users) -> None:
    """Before any erasure too: the trail keeps references and digests of the free texts."""
    agent, legal = users[Role.AGENT], users[Role.LEGAL]
    event = make_event()
    event_services.update_event(event, title=event.title, severity=event.severity,
                                cause=event.cause, summary="Mr Chen found it", actor=agent)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "event.update"))
    assert "summary" not in entry.after
    assert entry.after["summary_sha256"] == hashlib.sha256(b"Mr Chen found it").hexdigest()
    _import(users, event, f"K-1,{NAME},{EMAIL},\n")
    customer = db.session.scalar(select(Customer))
    case = cases.open_case(customer, cases.CaseInput(
        "compensation", "O-1", "9800.00", "CNY", "other", "", None), actor=agent)
    cases.change_status(case, "start", actor=agent)
    cases.propose(case, actor=agent)
    request = signoffs.decide(case.signoff_id, "rejected", f"Not {NAME}'s order", actor=legal)
    decided = db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "signoff.rejected"))
    assert "comment" not in decided.after
    assert decided.after["comment_sha256"] == hashlib.sha256(
        request.comment.encode()).hexdigest()
    moved = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "case.in_progress",
                                                       AuditEntry.summary.like("%returned%")))
    note = db.session.get(CaseNote, moved.after["comment"]["note_id"])
    assert note.body == request.comment
    assert moved.after["comment"]["digest"] == customer.audit_digest(request.comment)


# --- the matcher: whole words for Latin script, substrings for CJK ----------------------------


def test_latin_names_match_whole_words_only() -> None:
    assert not mentions("The client library retried.", "Li")
    assert mentions("Li restarted it.", "Li")
    assert mentions("联系Li女士", "Li")  # next to Chinese characters it is a word
    assert not mentions("mail to jimbob@example.com", "bob@example.com")
    assert mentions("mail to BOB@example.com.", "bob@example.com")
    assert first_mentioned("Ana and Li", ["Bo", "Li", "Ana"]) == "Li"
    scrub = Scrubber(["Li", "li@example.com"], "[erased]")
    assert scrub("Li wrote from li@example.com; the client (Lima) was fine") == (
        "[erased] wrote from [erased]; the client (Lima) was fine")


def test_cjk_names_match_anywhere() -> None:
    assert mentions("王芳的订单", "王芳")
    assert mentions("客户王芳已退款", "王芳")
    scrub = Scrubber(["王芳"], "[erased]")
    assert scrub({"note": ["客户王芳已退款", "王芳芳"]}) == {"note": ["客户[erased]已退款",
                                                                 "[erased]芳"]}


def test_erasing_li_leaves_client_intact(app, users) -> None:
    event = make_event()
    _import(users, event, "K-1,Li,li@example.com,\n")
    customer = db.session.scalar(select(Customer))
    case = cases.open_case(customer, cases.CaseInput(
        "refund", "O-1", "10.00", "CNY", "other",
        "Li says the client app (Linux) failed; Li's order", None), actor=users[Role.AGENT])
    cases.add_note(case, "The client of Li called", actor=users[Role.AGENT])
    event_services.add_timeline_entry(event, occurred_at=None,
                                      text="Client outage; Li called", actor=users[Role.AGENT])
    erasure.erase_on_request(customer, "asked", actor=users[Role.ADMIN])
    assert db.session.get(Case, case.id).description == (
        "[erased] says the client app (Linux) failed; [erased]'s order")
    assert db.session.scalar(select(CaseNote.body)) == "The client of [erased] called"
    assert db.session.scalar(select(TimelineEntry.text)) == "Client outage; [erased] called"


# --- a batch: per-event work once, every customer erased ------------------------------------


def test_a_batch_erasure_scrubs_the_event_once_for_all_its_customers(app, users) -> None:
    event = make_event()
    _import(users, event, "K-1,Wu Lei,wu@example.com,\nK-2,孙丽,sun@example.com,\n"
                          "K-3,Keep Me,keep@example.com,\n")
    people = {c.external_ref: c for c in db.session.scalars(select(Customer))}
    event_services.add_timeline_entry(event, occurred_at=None,
                                      text="Wu Lei and 孙丽 called; Keep Me too",
                                      actor=users[Role.AGENT])
    ids = [people["K-1"].id, people["K-2"].id]
    erased, _files = erasure.erase_customers(ids + ids, reason="retention run 1",
                                             actor=None)
    db.session.commit()
    assert erased == sorted(ids)
    assert db.session.scalar(select(TimelineEntry.text)) == (
        "[erased] and [erased] called; Keep Me too")
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "customer.erase")) == 2
    again, _ = erasure.erase_customers(ids, reason="retention run 2", actor=None)
    assert again == []  # already erased: nothing, and no second entry
    assert db.session.get(Customer, people["K-3"].id).erased_at is None
    assert audit.verify_chain().ok


def test_a_retention_run_scans_the_event_once_per_batch_and_writes_audit_entries_last(
        app, users) -> None:
    """The timeline and the archives are read once per batch, not once per customer; the
    batch's audit entries (which take the chain's lock, sign-ins wait for it) come after
    every other write of the batch, in one INSERT."""
    event = make_event()
    _import(users, event, "".join(f"K-{i},Person {i},p{i}@example.com,\n" for i in range(6)))
    event_services.add_timeline_entry(event, occurred_at=None, text="Person 3 called",
                                      actor=users[Role.AGENT])
    event.status, event.closed_at = "closed", utcnow() - timedelta(days=400)
    db.session.commit()
    run = retention.dry_run(actor=users[Role.ADMIN])
    retention.confirm_run(run, actor=users[Role.ADMIN])
    statements: list[str] = []

    def log(_conn, _cursor, statement, *_args) -> None:
        statements.append(" ".join(statement.split()).upper())

    sa_event.listen(db.engine, "before_cursor_execute", log)
    try:
        retention.run_retention(run.id)
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", log)
    assert db.session.scalar(select(func.count(Customer.id)).where(
        Customer.erased_at.is_not(None))) == 6
    assert sum("FROM EVENT_TIMELINE_ENTRY" in s for s in statements) == 1
    assert sum("FROM EVENT_ARCHIVE" in s for s in statements) == 1
    audit_inserts = [i for i, s in enumerate(statements) if s.startswith("INSERT INTO AUDIT_ENTRY")]
    erase_batch = audit_inserts[0]  # the retention.done entry is the second
    assert len(audit_inserts) == 2
    writes = [i for i, s in enumerate(statements) if s.startswith(("UPDATE", "INSERT"))
              and "RETENTION_RUN" not in s]
    assert max(i for i in writes if i < audit_inserts[1]) == erase_batch
