"""The bank files of a released batch, made by a real RQ worker through the document pipeline:
CSV in a bank's profile (UTF-8, GB18030 with Chinese headers) and ISO 20022 pain.001 valid
against the ISO schema; their SHA-256, row count and control sum match the bytes."""

from __future__ import annotations

import csv
import hashlib
import io
from decimal import Decimal

import pytest
import xmlschema
from sqlalchemy import select

from portal import documents
from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.errors import RuleViolation
from portal.extensions import db
from portal.models import PdfStatus
from portal.payouts import files, pain001, services
from portal.payouts.models import PayoutBatch, PayoutFile, PayoutLine
from tests.notice_helpers import make_event
from tests.payout_helpers import ACCOUNT, BANK, HOLDER, approved_case, second_finance

IBAN = "DE89370400440532013000"


def _released(users, method: str = "bank", accounts=(ACCOUNT, IBAN)) -> PayoutBatch:
    event = make_event()
    for n, account in enumerate(accounts, start=1):
        approved_case(users, f"{n}00.0{n}", event=event, ref=f"K-{n}",
                      bank=account if method == "bank" else None)
    batch = services.prepare_batch(programme_id=None, currency="CNY", method=method,
                                   actor=users[Role.FINANCE])
    services.release_batch(batch, actor=second_finance())
    return batch


def _make(batch: PayoutBatch, users, run_worker, format: str, profile: str = "") -> tuple[
        PayoutFile, bytes]:
    row, created = files.request_file(batch, format=format, profile=profile,
                                      actor=users[Role.FINANCE])
    assert created
    documents.queue_after_commit(row)
    run_worker()
    row = db.session.get(PayoutFile, row.id)
    data = (documents.stored_path(row.sha256, files.PIPELINE.suffix).read_bytes()
            if row.status == PdfStatus.DONE else b"")
    return row, data


def _assert_recorded(row: PayoutFile, data: bytes, batch: PayoutBatch) -> None:
    assert row.status == PdfStatus.DONE, row.error
    assert row.sha256 == hashlib.sha256(data).hexdigest() and row.size == len(data)
    assert row.row_count == batch.line_count == 2
    assert row.control_sum == batch.control_sum == Decimal("300.03")


def test_generic_csv_in_utf8_with_the_full_details(app, users, run_worker) -> None:
    batch = _released(users)
    row, data = _make(batch, users, run_worker, "csv", "generic")
    _assert_recorded(row, data, batch)
    assert data.startswith(b"\xef\xbb\xbf")  # a BOM, so spreadsheets read Chinese
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["EndToEndId", "CaseRef", "OrderRef"]
    lines = db.session.scalars(select(PayoutLine).where(PayoutLine.batch_id == batch.id)
                               .order_by(PayoutLine.id)).all()
    assert [r[0] for r in rows[1:]] == [line.end_to_end_id for line in lines]
    assert rows[1][3:8] == [HOLDER, ACCOUNT, BANK, "100.01", "CNY"]
    assert rows[2][4] == IBAN
    assert sum(Decimal(r[6]) for r in rows[1:]) == row.control_sum
    actions = list(db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.subject_type == "payout_batch", AuditEntry.subject_id == str(batch.id))))
    assert actions[-2:] == ["payout_file.request", "payout_file.made"]


def test_cn_bank_csv_is_gb18030_with_chinese_headers(app, users, run_worker) -> None:
    batch = _released(users)
    row, data = _make(batch, users, run_worker, "csv", "cn-bank")
    _assert_recorded(row, data, batch)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # really GB18030, not UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("gb18030"))))
    assert rows[0] == ["业务参考号", "收款人户名", "收款账号", "收款银行", "金额", "币种", "用途"]
    assert rows[1][1:6] == [HOLDER, ACCOUNT, BANK, "100.01", "CNY"]


def test_configured_profile(app, users, run_worker) -> None:
    app.config["PAYOUT_CSV_PROFILES"] = {"semi": {"encoding": "utf-8", "delimiter": ";",
                                                  "columns": [["amount", "Amt"],
                                                              ["end_to_end_id", "Ref"]]}}
    batch = _released(users)
    row, data = _make(batch, users, run_worker, "csv", "semi")
    _assert_recorded(row, data, batch)
    first = db.session.scalar(select(PayoutLine).where(PayoutLine.batch_id == batch.id)
                              .order_by(PayoutLine.id))
    assert data.decode().splitlines()[:2] == ["Amt;Ref", f"100.01;{first.end_to_end_id}"]


def test_pain001_is_valid_against_the_iso_schema_and_matches_the_batch(app, users,
                                                                       run_worker) -> None:
    batch = _released(users)
    row, data = _make(batch, users, run_worker, "pain.001")
    _assert_recorded(row, data, batch)
    schema = xmlschema.XMLSchema(str(pain001.SCHEMA_PATH))
    schema.validate(data.decode())  # a second validator, independent of the job's libxml2
    document = schema.to_dict(data.decode())["CstmrCdtTrfInitn"]
    header, [payment] = document["GrpHdr"], document["PmtInf"]
    assert header["MsgId"] == batch.ref and header["NbOfTxs"] == "2"
    assert Decimal(str(header["CtrlSum"])) == batch.control_sum
    transfers = payment["CdtTrfTxInf"]
    lines = db.session.scalars(select(PayoutLine).where(PayoutLine.batch_id == batch.id)
                               .order_by(PayoutLine.id)).all()
    assert [t["PmtId"]["EndToEndId"] for t in transfers] == [x.end_to_end_id for x in lines]
    assert transfers[0]["CdtrAcct"]["Id"]["Othr"]["Id"] == ACCOUNT
    assert transfers[1]["CdtrAcct"]["Id"]["IBAN"] == IBAN
    assert transfers[0]["Cdtr"]["Nm"] == HOLDER
    assert sum(Decimal(str(t["Amt"]["InstdAmt"]["$"])) for t in transfers) == row.control_sum
    again, _ = _make_again(row)
    assert again == data  # the same batch gives the same bytes


def _make_again(row: PayoutFile) -> tuple[bytes, None]:
    return files.render(db.session.get(PayoutFile, row.id)), None


def test_a_file_that_fails_the_schema_is_not_offered(app, client, auth, users,
                                                     run_worker) -> None:
    batch = _released(users, accounts=(ACCOUNT, "1" * 36))  # the schema allows 34 characters
    row, data = _make(batch, users, run_worker, "pain.001")
    assert row.status == PdfStatus.FAILED and data == b""
    assert "maxLength" in str(files.failure(row))
    auth.login(Role.FINANCE)
    assert client.get(f"/payouts/files/{row.id}/download").status_code == 404
    page = client.get(f"/payouts/{batch.id}?lang=en").text
    assert "does not validate against the ISO 20022 schema" in page and "maxLength" in page


def test_files_only_for_released_batches_and_pain001_only_for_bank(app, users) -> None:
    approved_case(users, ref="K-1")
    prepared = services.prepare_batch(programme_id=None, currency="CNY", method="bank",
                                      actor=users[Role.FINANCE])
    with pytest.raises(RuleViolation, match="released"):
        files.request_file(prepared, format="csv", profile="generic", actor=users[Role.FINANCE])
    original = _released(users, method="original")
    with pytest.raises(RuleViolation) as refused:
        files.request_file(original, format="pain.001", actor=users[Role.FINANCE])
    assert refused.value.field == "format"
    with pytest.raises(RuleViolation) as refused:
        files.request_file(original, format="csv", profile="nope", actor=users[Role.FINANCE])
    assert refused.value.field == "profile"
    with pytest.raises(RuleViolation):
        files.request_file(original, format="csv", profile="generic", actor=users[Role.AGENT])


def test_request_follow_and_download_over_http(app, client, auth, users, run_worker) -> None:
    batch = _released(users)
    db.session.commit()
    auth.login(Role.FINANCE)
    asked = client.post(f"/payouts/{batch.id}/files", data={"format": "csv",
                                                            "profile": "cn-bank"})
    assert asked.status_code == 302
    row = db.session.scalar(select(PayoutFile).where(PayoutFile.batch_id == batch.id))
    waiting = client.get(f"/payouts/files/{row.id}", headers={"HX-Request": "true"}).text
    assert "every 1s" in waiting
    run_worker()
    done = client.get(f"/payouts/files/{row.id}", headers={"HX-Request": "true"}).text
    assert "every 1s" not in done and row.sha256 in done and "300.03" in done
    page = client.get(f"/payouts/{batch.id}?lang=zh_CN").text
    assert row.sha256 in page and "控制总额" in page
    download = client.get(f"/payouts/files/{row.id}/download")
    assert download.status_code == 200 and download.headers["ETag"].strip('"') == row.sha256
    assert hashlib.sha256(download.data).hexdigest() == row.sha256
    assert "gb18030" in download.headers["Content-Type"]
    assert download.headers["Content-Disposition"].startswith("attachment;")  # saved, not shown
    auth.logout()
    auth.login(Role.AGENT)
    assert client.get(f"/payouts/files/{row.id}/download").status_code == 403


def test_without_the_paying_account_pain001_fails_and_can_be_asked_again(app, users,
                                                                         run_worker) -> None:
    from flask_babel import force_locale

    app.config["PAYOUT_DEBTOR_ACCOUNT"] = ""
    batch = _released(users)
    row, data = _make(batch, users, run_worker, "pain.001")
    assert row.status == PdfStatus.FAILED and data == b""
    with force_locale("en"):
        assert "PAYOUT_DEBTOR_ACCOUNT" in str(files.failure(row))
    with force_locale("zh_CN"):
        assert "尚未设置付款账户" in str(files.failure(row))
    app.config["PAYOUT_DEBTOR_ACCOUNT"] = IBAN
    again, created = files.request_file(batch, format="pain.001", actor=users[Role.FINANCE])
    assert again.id == row.id and not created and again.status == PdfStatus.QUEUED
    documents.queue_after_commit(again)
    run_worker()
    done = db.session.get(PayoutFile, row.id)
    assert done.status == PdfStatus.DONE and done.row_count == 2
    requests = db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.action == "payout_file.request")).all()
    assert len(requests) == 2
