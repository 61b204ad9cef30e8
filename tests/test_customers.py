"""Affected customers: validation, hand edits and the streamed CSV import."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.customers import services
from portal.customers.models import Customer, ImportBatch
from portal.errors import RuleViolation
from portal.extensions import db
from tests.notice_helpers import make_event

HEADER = "external_ref,name,company,email,phone,locale,tags\n"


def _import(app, users, data: bytes, event=None, tmp_path: Path | None = None) -> ImportBatch:
    event = event or make_event()
    batch = services.start_import(event, io.BytesIO(data), "customers.csv",
                                  actor=users[Role.AGENT])
    services.validate_import(batch.id)
    db.session.refresh(batch)
    return batch


def _confirm_and_run(batch: ImportBatch, users) -> ImportBatch:
    services.confirm_import(batch, actor=users[Role.AGENT])
    services.run_import(batch.id)
    db.session.refresh(batch)
    return batch


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "field"), [
    ({"external_ref": "", "name": "A"}, "external_ref"),
    ({"external_ref": "1", "name": " "}, "name"),
    ({"external_ref": "1", "name": "A", "email": "not-an-address"}, "email"),
    ({"external_ref": "1", "name": "A", "email": "a@b"}, "email"),
    ({"external_ref": "1", "name": "A", "phone": "call me"}, "phone"),
    ({"external_ref": "1", "name": "A", "locale": "fr"}, "locale"),
    ({"external_ref": "x" * 65, "name": "A"}, "external_ref"),
])
def test_invalid_customers_name_the_field(raw, field) -> None:
    with pytest.raises(RuleViolation) as err:
        services.clean_customer(raw)
    assert err.value.field == field


def test_valid_customer_is_normalised() -> None:
    values = services.clean_customer({
        "external_ref": " K-1 ", "name": "王芳", "email": "Wang.Fang@Example.COM",
        "phone": "+86 138-0013-8000", "locale": "zh-CN", "tags": "vip; 出金；vip"})
    assert values == {"external_ref": "K-1", "name": "王芳", "company": "",
                      "email": "wang.fang@example.com", "phone": "+86 138-0013-8000",
                      "locale": "zh_CN", "tags": ["vip", "出金"]}
    assert services.clean_customer({"external_ref": "2", "name": "B", "locale": ""})[
        "locale"] == "zh_CN"


def test_hand_edits_are_audited_and_refs_stay_unique(app, users) -> None:
    event = make_event()
    first = services.create_customer(event, {"external_ref": "K1", "name": "A"},
                                     actor=users[Role.AGENT])
    with pytest.raises(RuleViolation, match="already exists"):
        services.create_customer(event, {"external_ref": "K1", "name": "B"},
                                 actor=users[Role.AGENT])
    second = services.create_customer(event, {"external_ref": "K2", "name": "B"},
                                      actor=users[Role.AGENT])
    with pytest.raises(RuleViolation, match="already exists"):
        services.update_customer(second, {"external_ref": "K1", "name": "B"},
                                 actor=users[Role.AGENT])
    assert services.update_customer(first, {"external_ref": "K1", "name": "A2"},
                                    actor=users[Role.AGENT])
    actions = db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.subject_type == "customer", AuditEntry.subject_id == str(first.id))).all()
    assert actions == ["customer.create", "customer.update"]


# --- encodings and CSV shapes ----------------------------------------------------------------


def test_detects_bom_plain_utf8_and_gb18030(tmp_path) -> None:
    text = HEADER + "1,王芳,华夏银行,w@example.com,,zh_CN,\n"
    cases = {"bom.csv": ("\ufeff" + text).encode("utf-8"), "plain.csv": text.encode("utf-8"),
             "gbk.csv": text.encode("gbk"), "gb18030.csv": text.encode("gb18030")}
    expected = {"bom.csv": "utf-8-sig", "plain.csv": "utf-8", "gbk.csv": "gb18030",
                "gb18030.csv": "gb18030"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        encoding = services.detect_encoding(path)
        assert encoding == expected[name], name
        [row] = list(services.read_rows(path, encoding))
        assert row.values["name"] == "王芳" and row.values["company"] == "华夏银行"


def test_quoted_commas_newlines_and_empty_lines(app, tmp_path) -> None:
    path = tmp_path / "shapes.csv"
    path.write_text(HEADER + '1,"Li, Lei","ACME, Inc.",l@example.com,,en,"a;b"\n'
                    "\n,,,,,,\n"
                    '2,"Multi\nline",,,,,\n'
                    "3,Too,many,cells,,,,,extra\n", encoding="utf-8")
    rows = list(services.read_rows(path, "utf-8"))
    assert [r.number for r in rows] == [2, 5, 7]  # blank lines skipped, numbers are file lines
    assert rows[0].values["name"] == "Li, Lei" and rows[0].values["company"] == "ACME, Inc."
    # A line break is no part of a name (it would forge a header in the customer's e-mail).
    assert rows[1].values is None and rows[1].error.params == {"field": "name",
                                                               "code": "U+000A"}
    assert str(rows[2].error) == "more cells than columns"
    assert rows[2].cells == ["3", "Too", "many", "cells", "", "", "", "", "extra"]


@pytest.mark.parametrize("value", ["Multi\nline", "CR\rhere", "Tab\there", "NUL\x00byte",
                                   "C1\x85next", "LS\u2028next"])
def test_the_customer_form_refuses_a_line_break_or_control_character(
        app, users, client, auth, value: str) -> None:
    event = make_event()
    auth.login(Role.AGENT)
    url = f"/customers/event/{event.id}/new"
    for field in ("name", "company"):
        data = {"external_ref": "K1", "name": "Wang Fang", "locale": "en", field: value}
        response = client.post(url, data=data)
        assert response.status_code == 422 and f'id="{field}-error"' in response.text
        assert "contains a control character" in response.text
    zh = client.post(f"{url}?lang=zh_CN", data={"external_ref": "K1", "name": value,
                                                "locale": "en"})
    assert "含有控制字符" in zh.text
    assert db.session.scalar(select(func.count(Customer.id))) == 0


def test_missing_columns_are_reported(app, users) -> None:
    batch = _import(app, users, b"ref,name\n1,A\n")
    assert batch.status == "failed" and "external_ref" in batch.message


# --- the import --------------------------------------------------------------------------------


def test_preview_counts_errors_and_rejected_rows_file(app, users) -> None:
    data = (HEADER + "1,Ann,,ann@example.com,,en,\n2,,,,,,\n3,Bob,,bob@bad,,,\n"
            "1,Ann again,,,,,\n4,Cai,,,,,\n").encode()
    batch = _import(app, users, data)
    assert (batch.status, batch.total_rows, batch.valid_rows, batch.error_rows) == (
        "validated", 5, 2, 3)
    assert [line for line, _ in batch.errors_preview] == [3, 4, 5]
    assert "already appears on line 2" in str(batch.errors_preview[2][1])
    rejected = list(csv.DictReader(io.StringIO("".join(services.rejected_csv(batch))
                                              .lstrip("\ufeff"))))
    assert [r["line"] for r in rejected] == ["3", "4", "5"]
    assert rejected[1]["email"] == "bob@bad" and "e-mail" in rejected[1]["reason"]
    assert db.session.scalar(select(func.count(Customer.id))) == 0  # a preview imports nothing


def test_import_valid_rows_then_reimport_updates(app, users) -> None:
    event = make_event()
    batch = _confirm_and_run(_import(app, users, (HEADER + "1,Ann,,,,,\n2,Bob,,,,,\n").encode(),
                                     event), users)
    assert (batch.status, batch.created_count, batch.updated_count) == ("imported", 2, 0)
    again = _confirm_and_run(_import(app, users, (HEADER + "2,Bob Li,,,,,\n3,Cai,,,,,\n")
                                     .encode(), event), users)
    assert (again.created_count, again.updated_count) == (1, 1)
    names = db.session.scalars(select(Customer.name).where(Customer.event_id == event.id)
                               .order_by(Customer.external_ref)).all()
    assert names == ["Ann", "Bob Li", "Cai"]
    assert db.session.scalar(select(AuditEntry).where(
        AuditEntry.action == "customer_import.done", AuditEntry.subject_id == str(again.id)))


def test_discard_imports_nothing(app, users) -> None:
    batch = _import(app, users, (HEADER + "1,Ann,,,,,\n").encode())
    services.discard_import(batch, actor=users[Role.AGENT])
    assert batch.status == "discarded"
    with pytest.raises(RuleViolation):
        services.confirm_import(batch, actor=users[Role.AGENT])
    assert db.session.scalar(select(func.count(Customer.id))) == 0


def test_a_failure_midway_imports_nothing(app, users, monkeypatch) -> None:
    rows = "".join(f"{n},Name {n},,,,,\n" for n in range(2500))
    batch = _import(app, users, (HEADER + rows).encode())
    services.confirm_import(batch, actor=users[Role.AGENT])
    real_read = services.read_rows

    def failing(path, encoding):
        for n, row in enumerate(real_read(path, encoding)):
            if n == 2200:  # after two batches were written
                raise RuntimeError("disk fell off")
            yield row

    monkeypatch.setattr(services, "read_rows", failing)
    db.session.commit()  # the job's claim commits the batch before its work
    with pytest.raises(RuntimeError):
        services.run_import(batch.id)
    db.session.expire_all()
    assert db.session.get(ImportBatch, batch.id).status == "failed"
    assert db.session.scalar(select(func.count(Customer.id))) == 0


def test_empty_and_oversized_uploads_are_refused(app, users, monkeypatch) -> None:
    event = make_event()
    db.session.commit()
    with pytest.raises(RuleViolation, match="empty"):
        services.start_import(event, io.BytesIO(b""), "e.csv", actor=users[Role.AGENT])
    db.session.rollback()  # as the request's boundary does after a refusal
    monkeypatch.setattr(services, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(RuleViolation, match="larger"):
        services.start_import(event, io.BytesIO(b"x" * 11), "big.csv", actor=users[Role.AGENT])
    db.session.rollback()
    assert db.session.scalar(select(func.count(ImportBatch.id))) == 0


@pytest.mark.integration
def test_upload_preview_and_import_through_the_worker(app, client, auth, users,
                                                      run_worker) -> None:
    event = make_event()
    auth.login(Role.AGENT)
    data = ("\ufeff" + HEADER + "1,王芳,,w@example.com,,zh_CN,vip\n2,,,,,,\n").encode("gbk",
                                                                                      "ignore")
    response = client.post(f"/customers/event/{event.id}/import",
                           data={"file": (io.BytesIO(data), "kunden.csv")},
                           content_type="multipart/form-data")
    status_url = response.headers["Location"]
    assert 'hx-trigger="every 1s"' in client.get(status_url, headers={"HX-Request": "true"}).text
    run_worker()
    preview = client.get(status_url).text
    assert "Import the 1 valid row<" in preview and "name is required" in preview
    batch = db.session.scalar(select(ImportBatch))
    rejected = client.get(f"/customers/imports/{batch.id}/rejected.csv")
    assert rejected.status_code == 200 and b"name is required" in rejected.data
    client.post(f"/customers/imports/{batch.id}/confirm")
    run_worker()
    assert "1 customer added, 0 updated." in client.get(status_url).text
    assert db.session.scalar(select(Customer.name)) == "王芳"


@pytest.mark.integration
def test_a_hundred_thousand_rows_stream_through(app, users, tmp_path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER)
        for n in range(100_000):
            fh.write(f"R{n},客户{n},公司{n % 97},c{n}@example.com,+86 138{n:08d},zh_CN,t{n % 5}\n")
    event = make_event()
    started = time.perf_counter()
    with path.open("rb") as fh:
        batch = services.start_import(event, fh, "big.csv", actor=users[Role.AGENT])
    services.validate_import(batch.id)
    db.session.refresh(batch)
    assert (batch.total_rows, batch.valid_rows, batch.error_rows) == (100_000, 100_000, 0)
    batch = _confirm_and_run(batch, users)
    assert batch.created_count == 100_000
    assert db.session.scalar(select(func.count(Customer.id))) == 100_000
    # Not a timing test (see bench/customer_import.py); a guard against quadratic behaviour.
    assert time.perf_counter() - started < 240
