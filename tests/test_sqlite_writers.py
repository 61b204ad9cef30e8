"""SQLite in WAL mode refuses, at once, a transaction that read and then writes after another
writer committed in between ("database is locked", whatever the busy timeout): sign-ins
failed while an erasure ran. A unit of work that will write takes the lock when it begins."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import select, text

from portal.audit import services as audit
from portal.audit.models import AuditEntry
from portal.auth.models import Role
from portal.extensions import db, writing


@pytest.fixture
def sqlite_path(app) -> str:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the deferred-transaction upgrade failure is SQLite's own")
    return db.engine.url.database


def _other_writer_can_start(path: str) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def test_a_state_changing_request_holds_the_write_lock_from_its_first_read(app,
                                                                         sqlite_path) -> None:
    with app.test_request_context("/cases/1/edit", method="POST"):
        db.session.execute(select(AuditEntry.id).limit(1)).all()
        assert not _other_writer_can_start(sqlite_path)
        db.session.rollback()
    assert _other_writer_can_start(sqlite_path)


def test_reads_take_no_lock_and_jobs_declare_their_writes(app, sqlite_path) -> None:
    with app.test_request_context("/cases/", method="GET"):
        db.session.execute(select(AuditEntry.id).limit(1)).all()
        assert _other_writer_can_start(sqlite_path)
        db.session.rollback()
    with writing():
        db.session.execute(text("SELECT 1")).all()
        assert not _other_writer_can_start(sqlite_path)
        db.session.rollback()


def test_sign_ins_never_fail_while_another_writer_commits_all_the_time(app, users,
                                                                      sqlite_path) -> None:
    """The symptom: with a writer committing in a loop, every sign-in and sign-out answers;
    before, some got a 500 from "database is locked"."""
    stop, errors = threading.Event(), []

    def busy_writer() -> None:
        with app.app_context():
            try:
                while not stop.is_set():
                    with writing():
                        audit.record("bench.write", "system", 0, "a concurrent writer")
                        db.session.commit()
            except Exception as exc:  # reported in the test's thread
                errors.append(exc)
            finally:
                db.session.remove()

    thread = threading.Thread(target=busy_writer)
    thread.start()
    client = app.test_client()
    statuses = []
    try:
        for _ in range(40):
            login = client.post("/login", data={"email": users[Role.AGENT].email,
                                                "password": "correct-horse-battery"})
            statuses.append(login.status_code)
            statuses.append(client.post("/logout").status_code)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert errors == []
    assert all(status in (200, 302) for status in statuses), statuses
