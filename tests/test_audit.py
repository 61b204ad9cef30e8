"""The audit trail: hash chain, append-only guards, verify, the staff page and its export."""

from __future__ import annotations

import csv
import io
import itertools

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from portal.accounts import Role
from portal.audit import services as audit
from portal.audit.models import GENESIS_HASH, AppendOnlyError, AuditEntry, AuditVerification
from portal.auth import services as auth_services
from portal.extensions import db
from portal.i18n import Message


def _entries() -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def _tamper(sql: str, **params: object) -> None:
    """Change a row behind the application's back, as an attacker with SQL access would."""
    db.session.commit()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql), params)
    db.session.expire_all()


def test_entries_form_a_chain(app, users) -> None:
    entries = _entries()
    assert len(entries) == len(users)  # one per created account
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    assert all(audit.compute_hash(e) == e.hash for e in entries)
    assert audit.verify_chain().ok


def test_entry_records_who_what_and_state(app, users) -> None:
    auth_services.update_user(users[Role.AGENT], name="Renamed", role=Role.LEGAL,
                              actor=users[Role.ADMIN])
    entry = _entries()[-1]
    assert entry.action == "user.update"
    assert entry.actor_id == users[Role.ADMIN].id
    assert (entry.subject_type, entry.subject_id) == ("user", str(users[Role.AGENT].id))
    assert entry.before["role"] == "agent" and entry.after["role"] == "legal"
    assert entry.after["name"] == "Renamed"
    assert "password_hash" not in entry.after


def test_entry_is_written_in_the_same_transaction(app, users) -> None:
    count = db.session.scalar(select(func.count(AuditEntry.id)))
    audit.record("test.rolled_back", "user", 1, Message("never committed"))
    db.session.rollback()
    assert db.session.scalar(select(func.count(AuditEntry.id))) == count


def test_orm_refuses_update_and_delete(app, users) -> None:
    entry = _entries()[0]
    entry.summary = "rewritten"
    with pytest.raises(AppendOnlyError):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(AppendOnlyError):
        db.session.delete(_entries()[0])
        db.session.flush()
    db.session.rollback()
    with pytest.raises(AppendOnlyError):
        db.session.execute(update(AuditEntry).values(summary="x"))
    with pytest.raises(AppendOnlyError):
        db.session.execute(delete(AuditEntry))
    db.session.rollback()
    assert audit.verify_chain().ok


def test_postgresql_trigger_refuses_changes_in_sql(app, users) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the trigger exists on PostgreSQL; SQLite relies on the ORM guard")
    for statement in ("UPDATE audit_entry SET summary = 'x'", "DELETE FROM audit_entry",
                      "TRUNCATE audit_entry CASCADE"):
        db.session.remove()
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    assert len(_entries()) == len(users)


def test_verify_cli_names_the_first_tampered_entry(app, runner, users) -> None:
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and f"OK: {len(users)} entries" in result.output
    second = _entries()[1]
    _tamper("UPDATE audit_entry SET summary = :s WHERE id = :id", s="forged", id=second.id)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN at entry {second.id}" in result.output


def test_verify_detects_a_deleted_entry(app, users) -> None:
    _first, second, third, *_rest = _entries()
    _tamper("DELETE FROM audit_entry WHERE id = :id", id=second.id)
    result = audit.verify_chain()
    assert not result.ok
    assert result.broken_entry_id == third.id
    assert result.checked == 1


def test_verify_detects_a_rehashed_entry(app, users) -> None:
    """Rewriting an entry and its own hash still breaks the link from the next entry."""
    first = _entries()[0]
    forged = audit.compute_hash(first)  # same content: only the summary changes below
    _tamper("UPDATE audit_entry SET summary = 'forged', hash = :h WHERE id = :id",
            h=forged[::-1], id=first.id)
    result = audit.verify_chain()
    assert not result.ok and result.broken_entry_id == first.id


def test_audit_page_filters_and_paginates(app, client, auth, users) -> None:
    for n in range(12):
        audit.record("test.ping", "thing", n, Message(f"ping {n}"), actor=users[Role.LEGAL])
    db.session.commit()
    app.config["AUDIT_PAGE_SIZE"] = 5
    auth.login(Role.AGENT)
    page = client.get("/audit/?action=test.ping")
    assert page.status_code == 200
    assert "12 entries" in page.text
    assert "ping 11" in page.text and "ping 6" not in page.text
    assert "Page 1 of 3" in page.text
    # htmx asks for the results partial only.
    partial = client.get("/audit/?action=test.ping&page=2",
                         headers={"HX-Request": "true", "HX-Target": "audit-results"})
    assert partial.text.lstrip().startswith('<div id="audit-results">')
    assert "<html" not in partial.text
    assert "ping 6" in partial.text and "ping 11" not in partial.text
    by_subject = client.get("/audit/?subject_type=thing&subject_id=3")
    assert "1 entry" in by_subject.text and "ping 3" in by_subject.text
    by_actor = client.get(f"/audit/?actor={users[Role.ADMIN].id}")
    assert "0 entries" in by_actor.text
    today = client.get("/audit/?date_from=2000-01-01&date_to=2000-01-02")
    assert "0 entries" in today.text


def test_csv_export_streams_the_filtered_rows(app, client, auth, users) -> None:
    audit.record("test.export", "thing", 1, Message("导出 with, comma"), actor=users[Role.ADMIN])
    db.session.commit()
    auth.login(Role.LEGAL)
    response = client.get("/audit/export.csv?action=test.export")
    assert response.mimetype == "text/csv"
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert len(rows) == 1
    assert rows[0]["summary"] == "导出 with, comma"
    entry = next(e for e in _entries() if e.action == "test.export")
    assert rows[0]["hash"] == entry.hash and rows[0]["prev_hash"] == entry.prev_hash


def test_history_partial_shows_one_subject(app, client, auth, users) -> None:
    auth.login(Role.AGENT)
    target = users[Role.LEGAL]
    response = client.get(f"/audit/history/user/{target.id}")
    assert "<html" not in response.text
    assert target.email in response.text
    assert users[Role.ADMIN].email not in response.text.split("Account")[0]


@pytest.mark.integration
def test_verification_runs_through_a_real_worker(app, client, auth, users, run_worker) -> None:
    auth.login(Role.ADMIN)
    response = client.post("/audit/verify")
    assert response.status_code == 302
    verification = db.session.scalar(select(AuditVerification))
    assert verification.status == "queued"
    vid = verification.id
    waiting = client.get(response.headers["Location"], headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in waiting.text  # the partial keeps polling
    run_worker()
    verification = db.session.get(AuditVerification, vid)
    assert verification.status == "ok"
    assert verification.checked == verification.total >= 4
    done = client.get(response.headers["Location"], headers={"HX-Request": "true"})
    assert "every 1s" not in done.text and "chain intact" in done.text
    # Running the same job again is harmless.
    from portal.audit import tasks

    tasks.verify_chain_job(vid)
    assert db.session.get(AuditVerification, vid).status == "ok"


@pytest.mark.integration
def test_a_tampered_chain_is_reported_by_the_job(app, users, run_worker) -> None:
    from portal.audit import tasks

    target_id = _entries()[1].id
    _tamper("UPDATE audit_entry SET after = NULL WHERE id = :id", id=target_id)
    verification = audit.request_verification(users[Role.ADMIN])
    db.session.commit()
    vid = verification.id
    assert tasks.queue_verification(vid)
    run_worker()
    verification = db.session.get(AuditVerification, vid)
    assert verification.status == "broken"
    assert verification.broken_entry_id == target_id


@pytest.mark.integration
def test_reconciler_requeues_work_lost_with_redis(app, runner, users, run_worker) -> None:
    from datetime import timedelta

    from portal.audit import tasks
    from portal.extensions import rq

    verification = audit.request_verification(users[Role.ADMIN])
    verification.requested_at -= timedelta(minutes=5)
    db.session.commit()
    vid = verification.id
    assert tasks.queue_verification(vid)
    rq.queue.connection.flushall()  # Redis emptied: the job is gone, the row is not
    run_worker()
    assert db.session.get(AuditVerification, vid).status == "queued"
    result = runner.invoke(args=["reconcile"])
    assert "Re-queued 1 job(s)." in result.output, result.output
    run_worker()
    assert db.session.get(AuditVerification, vid).status == "ok"
    assert "Re-queued 0 job(s)." in runner.invoke(args=["reconcile"]).output


def test_verify_when_redis_is_down_keeps_the_request(app_factory, users) -> None:
    app = app_factory(REDIS_URL="unix:///nonexistent/redis.sock")
    client = app.test_client()
    client.post("/login", data={"email": users[Role.ADMIN].email,
                                "password": "correct-horse-battery"})
    response = client.post("/audit/verify", follow_redirects=True)
    assert response.status_code == 200
    assert "cannot be reached" in response.text
    with app.app_context():
        assert db.session.scalar(select(AuditVerification.status)) == "queued"


def test_boosted_navigation_gets_the_full_page(app, client, auth, users) -> None:
    """hx-boost sends HX-Request too; only a targeted swap gets the bare partial."""
    verification = audit.request_verification(users[Role.ADMIN])
    db.session.commit()
    auth.login(Role.AGENT)
    url = f"/audit/verify/{verification.id}"
    boosted = client.get(url, headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.text and 'id="verification"' in boosted.text
    polled = client.get(url, headers={"HX-Request": "true"})
    assert "<html" not in polled.text and 'id="verification"' in polled.text
    boosted_list = client.get("/audit/", headers={"HX-Request": "true", "HX-Boosted": "true",
                                                  "HX-Target": "audit-results"})
    assert "<html" in boosted_list.text


def test_settings_entries_written_under_the_former_name_read_as_settings(app, users) -> None:
    """Older entries say "settings"; they stay as chained, and read with the new ones."""
    audit.record("settings.target", "settings", 0, Message("old name"), actor=users[Role.ADMIN])
    audit.record("settings.retention", audit.SETTING, "retention", Message("new name"),
                 actor=users[Role.ADMIN])
    db.session.commit()
    assert "settings" not in audit.known_subject_types()
    assert audit.SETTING in audit.known_subject_types()
    found = db.session.scalars(audit.entries(audit.AuditFilter(subject_type=audit.SETTING)))
    assert [e.summary for e in found] == ["new name", "old name"]
    assert [e.subject_type for e in _entries()[-2:]] == ["settings", audit.SETTING]
