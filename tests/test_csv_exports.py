"""Every CSV the portal writes goes through one writer: cells a spreadsheet would run as a
formula are escaped (OWASP: = + - @ TAB CR), and times carry the portal's UTC offset."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update

from portal import exports
from portal.accounts import Role
from portal.audit import services as audit
from portal.cases.models import Case
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.extensions import db
from portal.i18n import Message
from portal.lifecycle import archive as fmt
from portal.lifecycle import export
from portal.mailings import services as mailings
from portal.mailings.models import MailingRecipient
from tests.case_helpers import make_case
from tests.notice_helpers import make_event, make_notice, publish
from tests.test_customers import HEADER, _import
from tests.test_mailings import draft

FORMULA = "=cmd|' /C calc'!A0"
ROOT = Path(__file__).parents[1]


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def _is_inert(cell: str) -> bool:
    """A spreadsheet shows this cell as text, whatever it holds."""
    return not cell.startswith(exports.FORMULA_START)


@pytest.mark.parametrize(("value", "cell"), [
    (FORMULA, "'" + FORMULA), ("+86 138 0000 0000", "'+86 138 0000 0000"),
    ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("王芳", "王芳"), ("a=b", "a=b"), (None, ""), (Decimal("-12.50"), "-12.50"), (-3, "-3"),
    (["vip", "出金"], '["vip", "出金"]'),
])
def test_cells_that_a_spreadsheet_would_run_are_escaped(app, value, cell) -> None:
    assert exports.cell(value) == cell


def test_no_module_writes_csv_but_the_core_writer() -> None:
    writers = [str(path.relative_to(ROOT)) for path in (ROOT / "portal").rglob("*.py")
               if path.name != "exports.py"
               and re.search(r"csv\.(writer|DictWriter)\(", path.read_text())]
    assert writers == []


# --- formula injection, export by export ------------------------------------------------------


def test_the_rejected_rows_file_escapes_formulas_even_in_its_reason(app, client, auth,
                                                                    users) -> None:
    batch = _import(app, users, (HEADER + f"1,{FORMULA},,{FORMULA},,,\n").encode())
    auth.login(Role.AGENT)
    body = client.get(f"/customers/imports/{batch.id}/rejected.csv").get_data(as_text=True)
    [_, row] = _rows(body)
    assert all(_is_inert(cell) for cell in row)
    assert "'" + FORMULA in row and row[1].startswith("'" + FORMULA)


def test_archive_csvs_escape_formulas_and_still_verify(app, users, tmp_path) -> None:
    event = make_event()
    customer = customers.create_customer(event, {
        "external_ref": "@K1", "name": FORMULA, "company": "+SUM(1)", "email": "a@example.com",
        "tags": "-vip"}, actor=users[Role.AGENT])
    make_case(users, customer=customer, order_ref="=O-1")
    path = tmp_path / "archive.zip"
    with path.open("wb") as out:
        export.write_archive(event, out)
    assert fmt.verify_archive(path) == []
    with zipfile.ZipFile(path) as zf:
        files = {name: zf.read(name).decode("utf-8-sig") for name in zf.namelist()
                 if name.endswith(".csv")}
    for name, text in files.items():
        for row in _rows(text):
            assert all(_is_inert(cell) for cell in row), (name, row)
    assert "'" + FORMULA in files["customers.csv"] and "'=O-1" in files["cases.csv"]


def test_the_audit_export_escapes_formulas(app, client, auth, users) -> None:
    audit.record("test.export", "thing", 1, Message(FORMULA), actor=users[Role.ADMIN])
    db.session.commit()
    auth.login(Role.LEGAL)
    body = client.get("/audit/export.csv?action=test.export").get_data(as_text=True)
    [header, row] = _rows(body)
    assert row[header.index("summary")] == "'" + FORMULA


# --- times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("zone", "expected"), [
    ("Asia/Shanghai", "2026-12-01T10:30:00+08:00"),
    ("Europe/Berlin", "2026-12-01T03:30:00+01:00"),
])
def test_delivery_report_times_carry_the_portal_offset(app, users, zone, expected) -> None:
    app.config["BABEL_DEFAULT_TIMEZONE"] = zone  # PORTAL_TIMEZONE
    event = make_event()
    notice = make_notice(users, event)
    publish(notice, users)
    customers.create_customer(event, {"external_ref": "K1", "name": "王芳",
                                      "email": "w@example.com"}, actor=users[Role.AGENT])
    mailing = draft(users, event, notice)
    mailings.start(mailing, actor=users[Role.AGENT])
    db.session.execute(update(MailingRecipient).values(
        status="sent", sent_at=datetime(2026, 12, 1, 2, 30, tzinfo=UTC)))
    [header, row] = _rows("".join(mailings.report_csv(mailing)))
    assert row[header.index("sent_at")] == expected


def test_case_audit_and_archive_times_carry_the_portal_offset(app, client, auth, users,
                                                              tmp_path) -> None:
    make_case(users)
    moment = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    db.session.execute(update(Case).values(created_at=moment))
    db.session.execute(update(Customer).values(created_at=moment))
    db.session.commit()
    auth.login(Role.ADMIN)
    [header, row] = _rows(client.get("/cases/export.csv").get_data(as_text=True))
    assert row[header.index("created_at")] == "2026-12-02T00:00:00+08:00"
    assert row[header.index("due_at")].endswith("+08:00")
    audit_rows = _rows(client.get("/audit/export.csv").get_data(as_text=True))
    assert all(r[1].endswith("+08:00") for r in audit_rows[1:])
    path = tmp_path / "archive.zip"
    with path.open("wb") as out:
        export.write_archive(db.session.scalar(select(Case)).event, out)
    with zipfile.ZipFile(path) as zf:
        [header, row] = _rows(zf.read("customers.csv").decode("utf-8-sig"))
    assert row[header.index("created_at")] == "2026-12-02T00:00:00+08:00"
