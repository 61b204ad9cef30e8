"""Entitlements: the strict, all-or-nothing CSV import per event, and its page."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.customers import payout
from portal.customers import services as customers
from portal.customers.models import ImportStatus
from portal.errors import RuleViolation
from portal.extensions import db
from portal.programmes import entitlements as services
from portal.programmes import signals
from portal.programmes.models import Entitlement, EntitlementImport
from tests.notice_helpers import make_event

HEADER = "external_ref,order_ref,basis_amount,currency,basis_date,plan,region\n"
GOOD = ("K1,O-1,100.50,CNY,2026-01-15,gold,华东\n"
        "K1,O-2,20,CNY,2026/02/01,gold,华东\n"
        "K2,O-9,3000,JPY,2025-12-31,silver,\n")


@pytest.fixture
def event(app, users):
    event = make_event()
    for ref, name in (("K1", "王芳"), ("K2", "Anna Schmidt")):
        customers.create_customer(event, {"external_ref": ref, "name": name},
                                  actor=users[Role.AGENT])
    db.session.commit()
    return event


def _checked(event, users, data: bytes, name: str = "entitlements.csv") -> EntitlementImport:
    batch = services.start_import(event, io.BytesIO(data), name, actor=users[Role.AGENT])
    services.validate_import(batch.id)
    db.session.refresh(batch)
    return batch


def _applied(batch: EntitlementImport, users) -> EntitlementImport:
    services.confirm_import(batch, actor=users[Role.AGENT])
    services.run_import(batch.id)
    db.session.refresh(batch)
    return batch


def _count() -> int:
    return db.session.scalar(select(func.count(Entitlement.id)))


def _errors(batch: EntitlementImport) -> list[tuple[int, str]]:
    return [(line, str(reason)) for line, reason in batch.errors_preview]


# --- the happy path --------------------------------------------------------------------------


def test_a_file_is_checked_and_applied_through_the_worker(app, client, auth, users, event,
                                                          run_worker) -> None:
    received = []

    def receiver(sender, **_kw):
        received.append(sender)

    signals.entitlements_changed.connect(receiver)
    try:
        auth.login(Role.AGENT)
        response = client.post(f"/entitlements/event/{event.id}/import",
                               data={"file": (io.BytesIO((HEADER + GOOD).encode()), "e.csv")},
                               content_type="multipart/form-data")
        status_url = response.headers["Location"]
        progress = client.get(status_url, headers={"HX-Request": "true",
                                                   "HX-Target": "import-progress"}).text
        assert 'hx-trigger="every 1s"' in progress and "<html" not in progress
        run_worker()
        preview = client.get(status_url).text
        assert "Import the 3 entitlements" in preview
        batch = db.session.scalar(select(EntitlementImport))
        client.post(f"/entitlements/imports/{batch.id}/confirm")
        run_worker()
        assert "3 entitlements added, 0 updated." in client.get(status_url).text
    finally:
        signals.entitlements_changed.disconnect(receiver)
    assert received == [event.id]
    rows = {e.order_ref: e for e in db.session.scalars(select(Entitlement))}
    assert rows["O-1"].basis_amount == Decimal("100.50") and rows["O-1"].currency == "CNY"
    assert rows["O-2"].basis_date.isoformat() == "2026-02-01"
    assert rows["O-1"].attributes == {"plan": "gold", "region": "华东"}
    assert rows["O-9"].basis_amount == Decimal("3000") and rows["O-9"].currency == "JPY"
    actions = db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.subject_type == "entitlement_import").order_by(AuditEntry.id)).all()
    assert actions == ["entitlement_import.upload", "entitlement_import.confirm",
                       "entitlement_import.done"]
    page = client.get(f"/entitlements/event/{event.id}").text
    assert "O-9" in page and "120.50 CNY" in page and "3000 JPY" in page


def test_gb18030_and_bom_files_are_read(app, users, event) -> None:
    gbk = _checked(event, users, (HEADER + GOOD).encode("gb18030"))
    assert gbk.encoding == "gb18030" and gbk.valid_rows == 3 and gbk.error_rows == 0
    _applied(gbk, users)
    assert db.session.scalar(select(Entitlement.attributes).where(
        Entitlement.order_ref == "O-1")) == {"plan": "gold", "region": "华东"}
    bom = _checked(event, users, ("\ufeff" + HEADER + GOOD).encode())
    assert bom.encoding == "utf-8-sig" and bom.valid_rows == 3


def test_a_reimport_updates_the_known_orders(app, users, event) -> None:
    _applied(_checked(event, users, (HEADER + GOOD).encode()), users)
    again = _applied(_checked(event, users, (
        HEADER + "K1,O-1,99.99,CNY,2026-01-16,platinum,华北\nK2,O-10,5,USD,2026-01-01,,\n"
    ).encode()), users)
    assert (again.created_count, again.updated_count) == (1, 1)
    assert _count() == 4
    one = db.session.scalar(select(Entitlement).where(Entitlement.order_ref == "O-1"))
    assert one.basis_amount == Decimal("99.99") and one.attributes["plan"] == "platinum"
    assert one.last_import_id == again.id


def test_bank_details_are_sealed_never_stored_in_clear(app, users, event) -> None:
    data = ("external_ref,order_ref,basis_amount,currency,basis_date,account_holder,iban,bic\n"
            "K1,O-1,10,EUR,2026-01-01,Wang Fang,DE89 3704 0044 0532 0130 00,COBADEFFXXX\n"
            "K2,O-2,10,EUR,2026-01-01,,,\n")
    _applied(_checked(event, users, data.encode()), users)
    sealed = db.session.scalar(select(Entitlement).where(Entitlement.order_ref == "O-1"))
    assert "DE89" not in sealed.payout_sealed and "Wang" not in sealed.payout_sealed
    assert sealed.attributes == {}
    account = payout.unseal(sealed.customer_id, sealed.payout_sealed)
    assert (account.holder, account.account, account.is_iban) == (
        "Wang Fang", "DE89370400440532013000", True)
    assert "COBADEFFXXX" in account.bank
    assert db.session.scalar(select(Entitlement.payout_sealed).where(
        Entitlement.order_ref == "O-2")) is None


# --- bad input: each a row error with its line, and nothing applied -------------------------


@pytest.mark.parametrize(("row", "reason"), [
    ("K9,O-1,10,CNY,2026-01-01,,", "No customer with external_ref K9 in this event"),
    ("K1,O-1,-10,CNY,2026-01-01,,", "basis_amount must be more than zero"),
    ("K1,O-1,0,CNY,2026-01-01,,", "basis_amount must be more than zero"),
    ("K1,O-1,ten,CNY,2026-01-01,,", "basis_amount ten is not a decimal amount"),
    ("K1,O-1,1e3,CNY,2026-01-01,,", "basis_amount 1e3 is not a decimal amount"),
    ("K1,O-1,10.005,CNY,2026-01-01,,", "has more decimals than CNY allows (2)"),
    ("K1,O-1,10.5,JPY,2026-01-01,,", "has more decimals than JPY allows (0)"),
    ("K1,O-1,10,ABC,2026-01-01,,", "Unknown currency ABC"),
    ("K1,O-1,10,CNY,2026-02-30,,", "basis_date 2026-02-30 is not a date"),
    ("K1,O-1,10,CNY,yesterday,,", "basis_date yesterday is not a date"),
    ("K1,,10,CNY,2026-01-01,,", "order_ref is required"),
    ("K1,O-2,10,CNY,2026-01-01,,", "external_ref and order_ref K1, O-2 already appear on "
                                   "line 3"),
])
def test_each_bad_row_is_named_with_its_line_and_nothing_is_applied(app, users, event, row,
                                                                    reason) -> None:
    data = HEADER + "K2,O-7,10,CNY,2026-01-01,,\nK1,O-2,10,CNY,2026-01-01,,\n" + row + "\n"
    batch = _checked(event, users, data.encode())
    db.session.commit()
    assert (batch.valid_rows, batch.error_rows) == (2, 1)
    [(line, text)] = _errors(batch)
    assert line == 4 and reason in text
    with pytest.raises(RuleViolation):
        services.confirm_import(batch, actor=users[Role.AGENT])
    db.session.rollback()
    services.run_import(batch.id)  # not confirmed: does nothing
    assert _count() == 0
    assert db.session.get(EntitlementImport, batch.id).status == ImportStatus.VALIDATED


def test_a_missing_column_fails_the_whole_file(app, users, event) -> None:
    batch = _checked(event, users, b"external_ref,order_ref,basis_amount,currency\n"
                                   b"K1,O-1,10,CNY\n")
    assert batch.status == ImportStatus.FAILED
    assert "Missing column(s): basis_date" in str(batch.failure)
    assert _count() == 0


def test_bad_bank_details_are_row_errors_without_the_account(app, users, event) -> None:
    data = ("external_ref,order_ref,basis_amount,currency,basis_date,account_holder,iban\n"
            "K1,O-1,10,EUR,2026-01-01,Wang Fang,DE00 3704 0044 0532 0130 00\n"
            "K2,O-1,10,EUR,2026-01-01,,12345678\n")
    batch = _checked(event, users, data.encode())
    errors = _errors(batch)
    assert [line for line, _text in errors] == [2, 3]
    assert "bank account is not valid" in errors[0][1] and "DE00" not in errors[0][1]
    assert "account_holder is required" in errors[1][1]


def test_the_rejected_rows_download_as_csv(app, client, auth, users, event) -> None:
    batch = _checked(event, users, (HEADER + "K9,O-1,10,CNY,2026-01-01,,\n").encode())
    db.session.commit()
    auth.login(Role.LEGAL)
    answer = client.get(f"/entitlements/imports/{batch.id}/rejected.csv")
    assert answer.status_code == 200
    assert "No customer with external_ref K9" in answer.get_data(as_text=True)


def test_discarding_imports_nothing(app, users, event) -> None:
    batch = _checked(event, users, (HEADER + GOOD).encode())
    services.discard_import(batch, actor=users[Role.AGENT])
    services.run_import(batch.id)
    assert batch.status == ImportStatus.DISCARDED and _count() == 0
    with pytest.raises(RuleViolation):
        services.confirm_import(batch, actor=users[Role.AGENT])


# --- the page --------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "heading", "totals"), [
    ("en", "Entitlements", "Totals per currency"),
    ("zh-CN", "应得款项", "按币种合计"),
])
def test_the_page_reads_in_both_languages(app, client, auth, users, event, language, heading,
                                          totals) -> None:
    _applied(_checked(event, users, (HEADER + GOOD).encode()), users)
    db.session.commit()
    auth.login(Role.AGENT)
    page = client.get(f"/entitlements/event/{event.id}",
                      headers={"Accept-Language": language}).text
    assert heading in page and totals in page and "120.50 CNY" in page
    batch = db.session.scalar(select(EntitlementImport))
    status = client.get(f"/entitlements/imports/{batch.id}",
                        headers={"Accept-Language": language}).text
    assert ("3 entitlements added" if language == "en" else "新增 3 条应得款项") in status


def test_the_event_page_links_to_the_entitlements(app, client, auth, users, event) -> None:
    auth.login(Role.AGENT)
    assert f"/entitlements/event/{event.id}" in client.get(f"/events/{event.id}").text


def test_legal_may_read_but_not_upload(app, client, auth, users, event) -> None:
    auth.login(Role.LEGAL)
    page = client.get(f"/entitlements/event/{event.id}")
    assert page.status_code == 200 and "Upload and check" not in page.text
    refused = client.post(f"/entitlements/event/{event.id}/import",
                          data={"file": (io.BytesIO((HEADER + GOOD).encode()), "e.csv")},
                          content_type="multipart/form-data")
    assert refused.status_code == 403
    assert db.session.scalar(select(func.count(EntitlementImport.id))) == 0


def test_erasing_a_customer_forgets_the_bank_details_and_the_files(app, users, event) -> None:
    from portal import uow
    from portal.customers.models import Customer
    from portal.lifecycle import erasure

    data = ("external_ref,order_ref,basis_amount,currency,basis_date,account_holder,account\n"
            "K1,O-1,10,CNY,2026-01-01,Wang Fang,6222 0000 1111 2222\n")
    batch = _applied(_checked(event, users, data.encode()), users)
    bad = _checked(event, users, (HEADER + "K9,O-1,10,CNY,2026-01-01,,\n").encode())
    uow.commit()
    assert services.upload_path(batch).exists() and bad.first_errors
    wang = db.session.scalar(select(Customer).where(Customer.external_ref == "K1"))
    erasure.erase_on_request(wang, "Asked to be forgotten", actor=users[Role.ADMIN])
    uow.commit()
    kept = db.session.scalar(select(Entitlement))
    assert kept.payout_sealed is None and kept.basis_amount == Decimal("10.00")
    assert not services.upload_path(batch).exists()
    assert not services.rejected_path(bad).exists()
    assert db.session.get(EntitlementImport, bad.id).first_errors == []


@pytest.mark.integration
def test_a_hundred_thousand_entitlements_stream_through(app, users, tmp_path) -> None:
    import time

    event = make_event()
    people = tmp_path / "people.csv"
    people.write_text("external_ref,name\n" + "".join(f"R{n},客户{n}\n" for n in range(20_000)))
    with people.open("rb") as fh:
        batch = customers.start_import(event, fh, "people.csv", actor=users[Role.AGENT])
    customers.validate_import(batch.id)
    customers.confirm_import(batch, actor=users[Role.AGENT])
    customers.run_import(batch.id)
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER)
        for n in range(100_000):
            fh.write(f"R{n % 20_000},O-{n},{n % 5000 + 1}.25,CNY,2026-01-{n % 28 + 1:02d},"
                     f"p{n % 3},r{n % 7}\n")
    started = time.perf_counter()
    with path.open("rb") as fh:
        big = services.start_import(event, fh, "big.csv", actor=users[Role.AGENT])
    services.validate_import(big.id)
    db.session.refresh(big)
    assert (big.total_rows, big.valid_rows, big.error_rows) == (100_000, 100_000, 0)
    big = _applied(big, users)
    assert big.created_count == 100_000 and _count() == 100_000
    # Not a timing test; a guard against quadratic behaviour.
    assert time.perf_counter() - started < 240


def test_a_file_whose_job_was_lost_is_checked_after_the_reconciler(app, users, event,
                                                                  run_worker) -> None:
    from datetime import timedelta

    from portal import jobs
    from portal.programmes import entitlement_tasks

    batch = services.start_import(event, io.BytesIO((HEADER + GOOD).encode()), "e.csv",
                                  actor=users[Role.AGENT])  # queued by no one: Redis lost it
    db.session.commit()
    assert entitlement_tasks.requeue_lost_imports in jobs.RECONCILERS
    assert entitlement_tasks.requeue_lost_imports(timedelta(0)) == 1
    run_worker()
    assert db.session.get(EntitlementImport, batch.id).status == ImportStatus.VALIDATED


def test_an_empty_upload_is_refused_next_to_the_field(app, client, auth, users, event) -> None:
    auth.login(Role.AGENT)
    answer = client.post(f"/entitlements/event/{event.id}/import",
                         data={"file": (io.BytesIO(b""), "empty.csv")},
                         content_type="multipart/form-data")
    assert answer.status_code == 422 and "The file is empty." in answer.text
    assert db.session.scalar(select(func.count(EntitlementImport.id))) == 0
