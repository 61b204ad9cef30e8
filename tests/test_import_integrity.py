"""The customer import refuses what it cannot read faithfully: mixed encodings, broken quotes,
control characters and oversized uploads, each named by the line where it starts, in the
reader's language."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from flask_babel import refresh
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from portal.accounts import Role
from portal.customers import services
from portal.customers.models import Customer, ImportBatch
from portal.errors import RuleViolation
from portal.extensions import db
from tests.notice_helpers import make_event
from tests.test_customers import HEADER, _confirm_and_run, _import


def _page(client, batch: ImportBatch, lang: str = "en") -> str:
    """The import's page as a reader in ``lang`` sees it (a staff member signed in)."""
    return html.unescape(client.get(f"/customers/imports/{batch.id}?lang={lang}")
                         .get_data(as_text=True))


def _errors(client, batch: ImportBatch) -> dict[int, str]:
    """The preview's first errors by line, as an English reader sees them."""
    return {int(line): reason for line, reason in
            re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", _page(client, batch))}


# --- encodings -----------------------------------------------------------------------------


def test_a_utf8_file_with_one_gbk_line_is_refused_naming_that_line(app, client, auth,
                                                                   users) -> None:
    data = (HEADER.encode() + "1,张三,,,,,\n".encode() + "2,李四,,,,,\n".encode("gbk")
            + "3,王五,,,,,\n".encode())
    batch = _import(app, users, data)
    auth.login(Role.AGENT)
    assert batch.status == "failed"
    assert "Line 3 is not valid UTF-8" in _page(client, batch)
    assert db.session.scalar(select(func.count(Customer.id))) == 0


def test_a_gb18030_file_that_does_not_decode_wholly_is_refused(app, client, auth,
                                                               users) -> None:
    data = (HEADER + "1,张三,,,,,\n2,李四,,,,,\n").encode("gb18030") + b"3,\xff\xfe,,,,,\n"
    batch = _import(app, users, data)
    auth.login(Role.AGENT)
    assert batch.status == "failed"
    assert "Line 4 is not valid GB18030" in _page(client, batch)


def test_gbk_files_whose_lines_happen_to_be_valid_utf8_still_read_as_gbk(app, users) -> None:
    # "一" in GBK is D2 BB, also valid UTF-8 (U+04BB): a line holding only such characters
    # does not turn a GBK file into a broken UTF-8 one.
    rows = "".join(f"{n},客户{n},,,,,\n" for n in range(20)) + "20,一,,,,,\n"
    batch = _confirm_and_run(_import(app, users, (HEADER + rows).encode("gbk")), users)
    assert (batch.status, batch.encoding, batch.created_count) == ("imported", "gb18030", 21)
    assert db.session.scalar(select(Customer.name).where(Customer.external_ref == "20")) == "一"


# --- quotes and line numbers ----------------------------------------------------------------


def test_an_unterminated_quote_is_a_row_error_at_its_line(app, client, auth, users) -> None:
    # The quote opened on line 3 never closes: the rows after it must not become its cell.
    batch = _import(app, users, (HEADER + '1,Ann,,,,,\n2,"Bob,,,,,\n3,Cai,,,,,\n4,Dan,,,,,\n')
                    .encode())
    auth.login(Role.AGENT)
    assert (batch.status, batch.valid_rows, batch.error_rows) == ("validated", 1, 1)
    [(line, reason)] = _errors(client, batch).items()
    assert line == 3 and "quote" in reason and "line 5" in reason


def test_a_quote_closed_rows_later_is_a_row_error_and_reading_goes_on(app, client, auth,
                                                                      users) -> None:
    data = HEADER + '1,"Ann,,,,,\n2,Bob,,,,,\n3,"Cai",,,,,\n4,Dan,,,,,\n5,,,,,,\n'
    batch = _import(app, users, data.encode())
    auth.login(Role.AGENT)
    errors = _errors(client, batch)
    assert sorted(errors) == [2, 6] and "quote" in errors[2] and "required" in errors[6]
    assert batch.valid_rows == 1  # only 4,Dan; nothing swallowed silently


def test_the_rejected_rows_file_keeps_the_lines_a_broken_quote_swallowed(app, client, auth,
                                                                         users) -> None:
    batch = _import(app, users, (HEADER + '1,Ann,,,,,\n2,"Bob,,,,,\n3,Cai,,,,,\n4,Dan,,,,,\n')
                    .encode())
    auth.login(Role.AGENT)
    body = client.get(f"/customers/imports/{batch.id}/rejected.csv").get_data(as_text=True)
    assert "3,Cai" in body and "4,Dan" in body and '2,""Bob' in body


def test_rows_are_numbered_by_the_line_where_their_record_starts(app, client, auth,
                                                                 users) -> None:
    # Line 2 holds a two-line cell, line 4 a quote closed on line 5 (its record ends there).
    data = (HEADER + '1,Ann,"ACME\nLtd",,,,\n2,"Bob,,,,,\n3,"Cai",,,,,\n'
            '4,,,,,,\n5,Eve,,bad,,,\n').encode()
    batch = _import(app, users, data)
    auth.login(Role.AGENT)
    assert sorted(_errors(client, batch)) == [2, 4, 6, 7]


# --- control characters ----------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("name", "Ann\x00"), ("name", "Ann\nBcc: x@example.com"), ("name", "A\rB"),
    ("email", "a@example.com\r\nBcc: x@example.com"), ("company", "A\tB"),
    ("name", "A\x1bB"), ("name", "A\x7fB"), ("name", "A\x85B"), ("phone", "+86\x00138"),
    ("external_ref", "K\x00"), ("tags", "vip\x00"),
])
def test_control_characters_are_refused_naming_the_field(app, field, value) -> None:
    raw = {"external_ref": "K1", "name": "Ann", field: value}
    with pytest.raises(RuleViolation) as err:
        services.clean_customer(raw)
    assert err.value.field == field and "control character" in err.value.message


def test_a_nul_byte_is_a_row_error_and_the_other_rows_import(app, client, auth, users) -> None:
    data = (HEADER + "1,Ann,,,,,\n2,B\x00b,,,,,\n3,Cai,,c@example.com\x00,,,\n4,Dan,,,,,\n")
    batch = _import(app, users, data.encode())
    auth.login(Role.AGENT)
    assert (batch.status, batch.valid_rows, batch.error_rows) == ("validated", 2, 2)
    assert all("control character" in text for text in _errors(client, batch).values())
    batch = _confirm_and_run(batch, users)
    assert (batch.status, batch.created_count) == ("imported", 2)
    names = db.session.scalars(select(Customer.name).order_by(Customer.name)).all()
    assert names == ["Ann", "Dan"]


def test_a_failed_import_shows_no_raw_database_error(app, client, auth, users,
                                                     monkeypatch) -> None:
    batch = _import(app, users, (HEADER + "1,Ann,,,,,\n").encode())
    services.confirm_import(batch, actor=users[Role.AGENT])
    # A statement the database refuses, as PostgreSQL refused a NUL byte.
    monkeypatch.setattr(services, "_upsert_statement",
                        lambda: text("INSERT INTO no_such_table VALUES (1)"))
    db.session.commit()  # the job's claim commits the batch before its work
    with pytest.raises(DBAPIError):
        services.run_import(batch.id)
    auth.login(Role.AGENT)
    page = _page(client, db.session.get(ImportBatch, batch.id))
    assert "no_such_table" not in page and "nothing was imported" in page


# --- the reader's language and the rejected rows -----------------------------------------------


def test_import_reasons_follow_the_readers_language(app, client, auth, users) -> None:
    app.config["BABEL_DEFAULT_LOCALE"] = "zh_CN"  # the jobs' language in production
    refresh()
    batch = _import(app, users, (HEADER + "1,Ann,,,,,\n2,,,,,,\n").encode())
    auth.login(Role.AGENT)
    english = client.get(f"/customers/imports/{batch.id}?lang=en").get_data(as_text=True)
    chinese = client.get(f"/customers/imports/{batch.id}?lang=zh_CN").get_data(as_text=True)
    assert "name is required" in english and "必填" not in english
    assert "name 为必填项" in chinese
    rejected = f"/customers/imports/{batch.id}/rejected.csv"
    assert "name is required" in client.get(rejected + "?lang=en").get_data(as_text=True)
    assert "name 为必填项" in client.get(rejected + "?lang=zh_CN").get_data(as_text=True)
    failed = _import(app, users, b"ref,name\n1,A\n")
    page = _page(client, failed)
    assert "Missing column(s): external_ref" in page and "缺少" not in page


def test_the_rejected_rows_file_keeps_every_original_cell(app, client, auth, users) -> None:
    data = ("Note,external_ref,Name,email\n"
            "first,1,Ann,ann@bad\n"
            "second,2,Bob,b@example.com,extra,more\n")
    batch = _import(app, users, data.encode())
    auth.login(Role.AGENT)
    body = client.get(f"/customers/imports/{batch.id}/rejected.csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0] == ["line", "reason", "Note", "external_ref", "Name", "email"]
    assert rows[1][0] == "2" and rows[1][2:] == ["first", "1", "Ann", "ann@bad"]
    assert rows[2][0] == "3" and rows[2][2:] == ["second", "2", "Bob", "b@example.com",
                                                 "extra", "more"]


# --- upload size ---------------------------------------------------------------------------------


class CountingBody(io.RawIOBase):
    """A multipart body with one CSV file of about ``size`` bytes, made as it is read, that
    counts the bytes read from it."""

    ROW = b"1,A,,,,,\n"

    def __init__(self, size: int) -> None:
        self.head = (b"--x\r\nContent-Disposition: form-data; name=\"file\"; "
                     b"filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n" + HEADER.encode())
        self.tail = b"\r\n--x--\r\n"
        self.length = len(self.head) + size + len(self.tail)
        self.position = self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = offset if whence == 0 else self.length + offset
        return self.position

    def _bytes(self, start: int, stop: int) -> bytes:
        filler_end = self.length - len(self.tail)
        out = self.head[start:stop]
        a, b = max(start, len(self.head)), min(stop, filler_end)
        if a < b:
            offset = (a - len(self.head)) % len(self.ROW)
            out += (self.ROW * ((b - a) // len(self.ROW) + 2))[offset:offset + b - a]
        if stop > filler_end:
            out += self.tail[max(start - filler_end, 0):stop - filler_end]
        return out

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self.length - self.position))
        buffer[:n] = self._bytes(self.position, self.position + n)
        self.position += n
        self.read_bytes += n
        return n


@pytest.mark.parametrize(("lang", "text"), [("en", "larger than 64 MB"), ("zh_CN", "64 MB")])
def test_an_oversized_upload_is_refused_before_it_is_read(app, client, auth, users, lang,
                                                          text) -> None:
    event = make_event()
    auth.login(Role.AGENT)
    body = CountingBody(70 * 1024 * 1024)
    response = client.post(f"/customers/event/{event.id}/import?lang={lang}",
                           input_stream=body,
                           content_type="multipart/form-data; boundary=x")
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "<html" in page and text in page
    if lang == "zh_CN":
        assert "文件过大" in page
    assert body.read_bytes < 1024 * 1024
    assert db.session.scalar(select(func.count(ImportBatch.id))) == 0


def test_nginx_accepts_exactly_what_the_portal_accepts(app) -> None:
    from pathlib import Path

    conf = (Path(__file__).parents[1] / "deploy" / "nginx-aftercare.conf").read_text()
    [size] = [line.split()[1].rstrip(";") for line in conf.splitlines()
              if line.strip().startswith("client_max_body_size")]
    assert size.endswith("m")
    assert int(size[:-1]) * 1024 * 1024 == app.config["MAX_CONTENT_LENGTH"]
    assert app.config["MAX_CONTENT_LENGTH"] > services.MAX_UPLOAD_BYTES
