"""Two writers of the audit chain at once: neither may append after a head the other has
moved. On SQLite a connection that has only read holds no lock (its reads run outside a
transaction), so a sign-in read the head, another writer appended, and the sign-in's entry
then broke the chain's unique ``prev_hash`` — a 500 to the person signing in (seen while an
erasure ran)."""

from __future__ import annotations

import threading

from portal.accounts import Role
from portal.audit import services as audit
from portal.extensions import db
from portal.i18n import Message
from tests.conftest import PASSWORD


def test_sign_ins_never_fail_while_another_writer_appends_all_the_time(app, users) -> None:
    stop, errors = threading.Event(), []

    def busy_writer() -> None:
        with app.app_context():
            try:
                while not stop.is_set():
                    audit.record("bench.write", "system", 0, Message("a concurrent writer"))
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
            statuses.append(client.post("/login", data={"email": users[Role.AGENT].email,
                                                        "password": PASSWORD}).status_code)
            statuses.append(client.post("/logout").status_code)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert errors == []
    assert all(status in (200, 302) for status in statuses), statuses
    assert audit.verify_chain().ok
