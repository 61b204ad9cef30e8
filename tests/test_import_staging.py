"""The duplicate check within an imported file keeps its keys in the database
(``portal.imports.StagedKey``), not in a Python set: the same reasons and lines as before,
duplicates found however far apart (across the chunks it stages), and no staged key left
behind after a success, a failure, or a killed check that is resumed."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from portal import imports, uow
from portal.accounts import Role
from portal.customers import services, tasks
from portal.customers.models import Customer, ImportBatch, ImportStatus
from portal.extensions import db
from tests.notice_helpers import make_event
from tests.test_customers import HEADER, _confirm_and_run, _import

ROWS = 2 * imports.STAGE_CHUNK + 600  # three chunks of staged keys


def _staged(import_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(imports.StagedKey)
    if import_id is not None:
        stmt = stmt.where(imports.StagedKey.import_id == import_id)
    return db.session.scalar(stmt)


def _rejected(batch) -> list[tuple[int, str]]:
    """Every rejected row of the file (not only the preview's first ones): line, reason."""
    text_ = "".join(services.rejected_csv(batch)).lstrip("\ufeff")
    return [(int(row[0]), row[1]) for row in list(csv.reader(io.StringIO(text_)))[1:]]


def _customer_file() -> tuple[bytes, list[tuple[int, str]]]:
    """A customer file whose duplicates lie far apart, in other chunks; a quoted cell over
    two lines shifts the lines after it. Returns the file and the rejections it must get."""
    lines = [HEADER]
    line = 2
    first: dict[str, int] = {}
    expected: list[tuple[int, str]] = []

    def add(ref: str, row: str, *, height: int = 1, valid: bool = True) -> None:
        nonlocal line
        if valid and ref in first:
            expected.append((line, f"external_ref {ref} already appears on line {first[ref]}"))
        elif valid:
            first[ref] = line
        lines.append(row)
        line += height

    for i in range(1, ROWS + 1):
        ref = f"C-{i:05d}"
        if i == 3:  # invalid too, and on two lines
            expected.append((line, "company contains a control character (U+000A), such as "
                                   "a line break or a NUL byte; remove it."))
            add(ref, f'{ref},Ann,"Acme\nLtd",,,,\n', height=2, valid=False)
        elif i == 9:  # an invalid row's reference is not taken: a later row may use it
            add(ref, f"{ref},Bo,,not-an-address,,,\n", valid=False)
            expected.append((line - 1, "not-an-address is not an e-mail address."))
        elif i == 40:  # within the same chunk as its original
            add("C-00005", "C-00005,Cy,,,,,\n")
        elif i == 1500:  # far away, in the second chunk
            add("C-00001", "C-00001,Di,,,,,\n")
        elif i == ROWS - 100:  # the invalid row's reference, now valid: accepted
            add("C-00009", "C-00009,Ed,,,,,\n")
        elif i == ROWS:  # far away again, in the third chunk, of both
            add("C-00009", "C-00009,Fay,,,,,\n")
        else:
            add(ref, f"{ref},Name {i},,,,,\n")
    return "".join(lines).encode(), expected


def test_duplicates_far_apart_keep_their_reasons_and_lines(app, users) -> None:
    data, expected = _customer_file()
    assert len(expected) == 5
    batch = _import(app, users, data)
    assert batch.status == ImportStatus.VALIDATED
    assert _rejected(batch) == expected
    assert (batch.total_rows, batch.error_rows) == (ROWS, 5)
    assert ("external_ref C-00001 already appears on line 2"
            in [reason for _, reason in expected])
    assert _staged() == 0  # the check is over: its keys are gone
    batch = _confirm_and_run(batch, users)
    assert batch.status == ImportStatus.IMPORTED
    assert batch.created_count == ROWS - 5 and batch.updated_count == 0
    names = dict(db.session.execute(select(Customer.external_ref, Customer.name).where(
        Customer.external_ref.in_(("C-00001", "C-00005", "C-00009")))).tuples().all())
    # The first row of each reference is imported, the repeats are not.
    assert names == {"C-00001": "Name 1", "C-00005": "Name 5", "C-00009": "Ed"}
    assert _staged() == 0
    # A re-import updates every customer and adds none (the known refs are the table's).
    again = _confirm_and_run(_import(app, users, data, event=batch.event), users)
    assert (again.created_count, again.updated_count) == (0, ROWS - 5)
    assert _staged() == 0


def test_entitlement_duplicates_far_apart_keep_their_reasons_and_lines(app, users) -> None:
    from tests.test_entitlements import HEADER as ENTITLEMENT_HEADER
    from tests.test_entitlements import _checked

    event = make_event()
    services.create_customer(event, {"external_ref": "K1", "name": "王芳"},
                             actor=users[Role.AGENT])
    rows = [f"K1,O-{i},10,CNY,2026-01-15,gold,\n" for i in range(1, ROWS + 1)]
    rows[ROWS - 1] = "K1,O-5,12,CNY,2026-01-15,gold,\n"  # line ROWS + 1 repeats line 6
    rows[1200] = "K1,O-1,12,CNY,2026-01-15,gold,\n"  # line 1202 repeats line 2
    batch = _checked(event, users, (ENTITLEMENT_HEADER + "".join(rows)).encode())
    assert batch.error_rows == 2
    assert [(line, str(reason)) for line, reason in batch.errors_preview] == [
        (1202, "external_ref and order_ref K1, O-1 already appear on line 2"),
        (ROWS + 1, "external_ref and order_ref K1, O-5 already appear on line 6")]
    assert _staged() == 0


def test_no_staged_key_outlives_an_applied_entitlements_file(app, users) -> None:
    from tests.test_entitlements import GOOD, _applied, _checked
    from tests.test_entitlements import HEADER as ENTITLEMENT_HEADER

    event = make_event()
    for ref in ("K1", "K2"):
        services.create_customer(event, {"external_ref": ref, "name": ref},
                                 actor=users[Role.AGENT])
    batch = _applied(_checked(event, users, (ENTITLEMENT_HEADER + GOOD).encode()), users)
    assert batch.created_count == 3 and _staged() == 0


def test_no_staged_key_outlives_an_entitlements_file_refused_when_applied(app, users) -> None:
    from portal.models import utcnow
    from tests.test_entitlements import GOOD, _checked
    from tests.test_entitlements import HEADER as ENTITLEMENT_HEADER

    event = make_event()
    for ref in ("K1", "K2"):
        services.create_customer(event, {"external_ref": ref, "name": ref},
                                 actor=users[Role.AGENT])
    rows = GOOD * 1 + "".join(f"K1,X-{i},10,CNY,2026-01-15,gold,\n" for i in range(ROWS))
    batch = _checked(event, users, (ENTITLEMENT_HEADER + rows).encode())
    assert batch.status == ImportStatus.VALIDATED and _staged() == 0
    # K2 (line 4) is erased since the check: the file is refused whole when applied.
    db.session.execute(text("UPDATE customer SET erased_at = :now WHERE external_ref = 'K2'"),
                       {"now": utcnow()})
    from portal.programmes import entitlements
    from portal.programmes.models import EntitlementImport

    entitlements.confirm_import(batch, actor=users[Role.AGENT])
    batch_id = batch.id
    db.session.commit()  # the job's claim commits the batch before its work
    entitlements.run_import(batch_id)
    assert db.session.get(EntitlementImport, batch_id).status == ImportStatus.FAILED
    assert _staged() == 0


def test_no_staged_key_outlives_a_failed_import(app, users, monkeypatch) -> None:
    data, _ = _customer_file()
    batch = _import(app, users, data)
    services.confirm_import(batch, actor=users[Role.AGENT])
    db.session.commit()
    # A statement the database refuses, after the first chunk of keys was staged.
    monkeypatch.setattr(services, "_upsert_statement",
                        lambda: text("INSERT INTO no_such_table VALUES (1)"))
    with pytest.raises(DBAPIError):
        services.run_import(batch.id)
    assert db.session.get(ImportBatch, batch.id).status == ImportStatus.FAILED
    assert _staged() == 0
    assert db.session.scalar(select(func.count(Customer.id))) == 0  # all or nothing


def test_a_refused_file_leaves_no_staged_key(app, users) -> None:
    # A file refused whole (a missing column) ends its check with no key staged.
    batch = _import(app, users, b"name,email\nAnn,a@example.com\n")
    assert batch.status == ImportStatus.FAILED and _staged() == 0


class Killed(BaseException):
    """The worker dies: nothing after the last commit happens (not even an ``except``)."""


def test_a_killed_check_leaves_keys_that_its_resumption_drops(app, users, run_worker,
                                                               monkeypatch) -> None:
    data, expected = _customer_file()
    event = make_event()
    batch = services.start_import(event, io.BytesIO(data), "c.csv", actor=users[Role.AGENT])
    db.session.commit()
    monkeypatch.setattr(services, "PROGRESS_EVERY", 1500)

    def die_after_commit() -> None:
        uow.commit()  # the progress, and the keys staged so far, are committed
        raise Killed

    with pytest.raises(Killed):
        services.validate_import(batch.id, checkpoint=die_after_commit)
    uow.rollback()
    # Two chunks staged before line 1,500: less the two invalid rows and the two repeats.
    assert _staged(batch.id) == 2 * imports.STAGE_CHUNK - 4
    assert db.session.get(ImportBatch, batch.id).status == ImportStatus.VALIDATING

    # Its lease is over: the reconciler queues the check again, which starts afresh.
    monkeypatch.setattr(services, "PROGRESS_EVERY", 5000)
    assert tasks.requeue_lost_imports(timedelta(0)) == 1
    run_worker()
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert batch.status == ImportStatus.VALIDATED
    assert _rejected(batch) == expected  # the same reasons as a check never interrupted
    assert _staged() == 0


def test_a_check_that_fails_in_its_job_drops_the_keys_it_committed(app, users, run_worker,
                                                                   monkeypatch) -> None:
    data, _ = _customer_file()
    event = make_event()
    batch = services.start_import(event, io.BytesIO(data), "c.csv", actor=users[Role.AGENT])
    db.session.commit()
    monkeypatch.setattr(services, "PROGRESS_EVERY", 1500)
    real = imports.RejectedRows.add

    def add(self, row, error) -> None:
        if row.number > 2000:
            raise OSError("disk full")  # an error after the first checkpoint's commit
        real(self, row, error)

    monkeypatch.setattr(imports.RejectedRows, "add", add)
    assert tasks.queue_validation(batch.id)
    run_worker()
    assert db.session.get(ImportBatch, batch.id).status == ImportStatus.VALIDATING  # not done
    assert _staged(batch.id) == 0
