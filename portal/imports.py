"""Reading the CSV files people upload, without silently corrupting them.

The encoding is decided from the whole file and must then hold for all of it: a file that
mixes encodings is refused, naming its first bad line. Records come with the line they start
on (a quoted cell may span lines), and a record whose quotes are broken is an error of that
record instead of swallowing the rows after it into one cell.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from flask_babel import gettext as _
from sqlalchemy import Integer, String, Table, bindparam, delete, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from portal import uow
from portal.config import MAX_UPLOAD_BYTES
from portal.errors import RuleViolation
from portal.extensions import db
from portal.i18n import N_, Message

UTF8, UTF8_BOM, GB18030 = "utf-8", "utf-8-sig", "gb18030"
# C0 controls (NUL, TAB, CR, LF …), DEL and C1 controls: never part of a name, an e-mail
# address or any other one-line value (a CR/LF there can forge an e-mail header).
# C0, DEL and C1, and the Unicode line and paragraph separators.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")


def too_large() -> str:
    """Why an upload over the limit is refused, in the reader's language."""
    return _("The file is larger than %(mb)d MB, the most the portal accepts; split it and "
             "upload the parts.", mb=MAX_UPLOAD_BYTES // (1024 * 1024))


def control_character(text: str) -> str | None:
    """The first control character in ``text`` as ``U+XXXX``, or None."""
    found = CONTROL_CHARACTER.search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def _physical_lines(raw: Iterable[bytes]) -> Iterator[bytes]:
    """Lines as the CSV reader counts them: ended by LF, CRLF or a lone CR."""
    for chunk in raw:
        if b"\r" in chunk and not (chunk.endswith(b"\r\n") and chunk.count(b"\r") == 1):
            yield from (part for part in _LONE_CR.split(chunk) if part)
        else:
            yield chunk


def _bad_encoding(line: int, encoding: str) -> RuleViolation:
    return RuleViolation(N_(
        "Line %(line)d is not valid %(encoding)s, unlike the rest of the file, so the file "
        "cannot be read without garbling it. Save the whole file in one encoding (UTF-8 is "
        "best) and upload it again.", line=line, encoding=encoding), field="file")


def _wholly_utf8(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder(UTF8)()
    with path.open("rb") as fh:
        try:
            while chunk := fh.read(1 << 16):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) or GB18030 (what Chinese Excel saves; a superset of GBK),
    decided from the whole file; RuleViolation naming the first line that is not valid in it.

    A file that is not wholly UTF-8 is weighed line by line: a non-ASCII line valid as UTF-8
    counts for UTF-8, any other against it. The file is UTF-8 when it starts with a BOM or
    when at least as many lines count for UTF-8 as against it: then a UTF-8 file with one line
    saved as GBK is refused at that line (read as GB18030, its UTF-8 Chinese would decode
    without error, wrongly: 张三 → 寮犱笁). A GBK file has a few lines that are valid UTF-8 by
    chance ("一" is D2 BB), never most of them.
    """
    with path.open("rb") as fh:
        bom = fh.read(3) == codecs.BOM_UTF8
    if _wholly_utf8(path):
        return UTF8_BOM if bom else UTF8
    for_utf8 = against_utf8 = 0
    first_bad_utf8 = first_bad_gb18030 = None
    with path.open("rb") as fh:
        for number, line in enumerate(_physical_lines(fh), start=1):
            if number == 1 and bom:
                line = line[len(codecs.BOM_UTF8):]
            if line.isascii():
                continue
            try:
                line.decode(UTF8)
                for_utf8 += 1
            except UnicodeDecodeError:
                against_utf8 += 1
                first_bad_utf8 = first_bad_utf8 or number
            if first_bad_gb18030 is None:
                try:
                    line.decode(GB18030)
                except UnicodeDecodeError:
                    first_bad_gb18030 = number
    if bom or for_utf8 >= against_utf8:
        raise _bad_encoding(first_bad_utf8 or 1, "UTF-8")
    if first_bad_gb18030 is not None:
        raise _bad_encoding(first_bad_gb18030, "GB18030")
    return GB18030


@dataclass
class Record:
    line: int  # the line of the file where the record starts
    cells: list[str]
    error: Message | None = None


def read_records(path: Path, encoding: str) -> Iterator[Record]:
    """Every record of the file (blank lines as records without cells), in a strict CSV
    dialect: a quote left open, or text after a closing quote, makes that record an error
    running to the line where the reader noticed it, with the text of those lines as its one
    cell (so nothing it swallowed is lost), and reading goes on after that line."""
    with path.open(newline="", encoding=encoding, errors="strict") as fh:
        consumed: list[str] = []

        def lines() -> Iterator[str]:
            for line in fh:
                consumed.append(line)
                yield line

        reader = csv.reader(lines(), strict=True)
        start = 1
        while True:
            consumed.clear()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error:
                yield Record(start, ["".join(consumed).rstrip("\r\n")], N_(
                    "The quotes of this record are broken (a quoted cell is not closed, or "
                    "text follows its closing quote), so it runs to line %(end)d. Check its "
                    "quotes.", end=reader.line_num))
            else:
                yield Record(start, cells)
            start = reader.line_num + 1


# --- the pieces every streamed, all-or-nothing CSV import shares ------------------------------
# (customers: ``portal.customers.services``; entitlements: ``portal.programmes.entitlements``)


def save_upload(stream: BinaryIO, path: Path, limit: int = MAX_UPLOAD_BYTES) -> tuple[str, int]:
    """Copy an upload to ``path`` as a stream, at most ``limit`` bytes; its SHA-256 and size.
    RuleViolation (and nothing left on disk) for a file too large or empty."""
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("wb") as out:
            while chunk := stream.read(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise RuleViolation(too_large(), field="file")
                digest.update(chunk)
                out.write(chunk)
    except RuleViolation:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise RuleViolation(_("The file is empty."), field="file")
    return digest.hexdigest(), size


def clean_filename(filename: str | None) -> str:
    """An uploaded file's name as kept: no control characters, at most 255 characters."""
    return CONTROL_CHARACTER.sub("", filename or "")[:255] or "upload.csv"


def as_message(text: str | Message) -> Message:
    return text if isinstance(text, Message) else Message(text)


def column_names(header: Record) -> list[str]:
    """The header's cells as column names: trimmed, lower case, without a stray BOM."""
    return [h.strip().lstrip("\ufeff").lower() for h in header.cells]


def check_header(records: Iterator[Record], required: Sequence[str],
                 expected: Sequence[str]) -> Record:
    """The header record, checked (a file-level error: RuleViolation); its cells as in the
    file."""
    first = next(records, None)
    if first is None:
        raise RuleViolation(N_("The file is empty."))
    if first.error is not None:
        raise RuleViolation(first.error)
    names = column_names(first)
    missing = [c for c in required if c not in names]
    if missing:
        raise RuleViolation(N_("Missing column(s): %(cols)s. Expected: %(all)s.",
                               cols=", ".join(missing), all=", ".join(expected)))
    return first


@dataclass
class Row:
    number: int  # the line in the file where the record starts
    cells: list[str]  # as in the file, for the rejected rows
    raw: dict[str, str]
    values: dict[str, Any] | None
    error: Message | None


def read_rows(path: Path, encoding: str, *, required: Sequence[str], expected: Sequence[str],
              clean: Callable[[dict[str, str]], dict[str, Any]]) -> Iterator[Row]:
    """Stream the records of a CSV after its header, each as a Row cleaned by ``clean`` (a
    RuleViolation from it is the row's error); blank lines are skipped."""
    records = read_records(path, encoding)
    names = column_names(check_header(records, required, expected))
    for record in records:
        cells = record.cells
        if record.error is not None:
            yield Row(record.line, cells, {}, None, record.error)
            continue
        if not any(cell.strip() for cell in cells):
            continue
        raw = {name: cells[i] if i < len(cells) else "" for i, name in enumerate(names)}
        if len(cells) > len(names):
            yield Row(record.line, cells, raw, None, N_("more cells than columns"))
            continue
        try:
            yield Row(record.line, cells, raw, clean(raw), None)
        except RuleViolation as err:
            yield Row(record.line, cells, raw, None, as_message(err.text))


class RejectedRows:
    """The rejected rows of a file, kept as JSON lines (every original cell and the reason as
    a message key), and the first few of them for the preview."""

    def __init__(self, path: Path, header: list[str], keep_first: int = 20) -> None:
        self.path, self.header, self.keep_first = path, header, keep_first
        self.first: list[dict[str, Any]] = []
        self.count = 0
        self._out: Any = None

    def __enter__(self) -> RejectedRows:
        self._out = self.path.open("w", encoding="utf-8")
        self._out.write(json.dumps({"header": self.header}) + "\n")
        return self

    def __exit__(self, *exc: object) -> None:
        self._out.close()

    def add(self, row: Row, error: Message) -> None:
        self.count += 1
        reason = {"line": row.number, "reason": error.to_json()}
        self._out.write(json.dumps({**reason, "cells": row.cells}) + "\n")
        if len(self.first) < self.keep_first:
            self.first.append(reason)


def rejected_csv(path: Path) -> Iterator[str]:
    """The rejected rows kept by :class:`RejectedRows` as CSV, reasons in the reader's
    language: the line, the reason, then every cell of the row as it was in the file."""
    from portal import exports

    with path.open(encoding="utf-8") as fh:
        header = json.loads(next(fh))["header"]
        rows = ([item["line"], str(Message.from_json(item["reason"])), *item["cells"]]
                for item in map(json.loads, fh))
        yield from exports.stream(["line", "reason", *header], rows)


def upsert_statement(table: Table, key: Sequence[str], update_columns: Sequence[str]) -> Any:
    """INSERT … ON CONFLICT (key) DO UPDATE of ``update_columns``, on both databases: run
    with a list of rows, a known key updates its row and never adds a second one."""
    stmt = _dialect_insert(table)
    return stmt.on_conflict_do_update(index_elements=list(key),
                                      set_={c: stmt.excluded[c] for c in update_columns})


def _dialect_insert(table: Table) -> Any:
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table)


# --- duplicates within a file, found by the database ----------------------------------------


class StagedKey(db.Model):
    """A key met in a file being read (an external_ref; an external_ref and order_ref), with
    the line where it first appears. The check for a key repeated within the file keeps them
    here, under the primary key, instead of in a Python set that grows with the file (18 MB
    at 100,000 rows): memory stays flat at a million rows. Rows live only while a pass over
    the file runs: each pass drops its import's rows when it starts and when it ends."""

    __tablename__ = "import_staged_key"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    import_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    line: Mapped[int] = mapped_column(Integer)


# Cells never hold control characters (``control_character``): this one joins a key's parts.
KEY_SEPARATOR = "\x1f"
STAGE_CHUNK = 1000


def drop_staged_keys(kind: str, import_id: int) -> None:
    """Forget the keys staged for one import (its pass is over, or starts again)."""
    db.session.execute(delete(StagedKey).where(StagedKey.kind == kind,
                                               StagedKey.import_id == import_id))


def _staged_line(kind: str, import_id: int, key: str) -> int:
    """The first line of a staged key: the whole primary key, so an index look-up whatever
    the planner believes of a table filled in this very transaction (no statistics yet)."""
    return db.session.scalar(select(StagedKey.line).where(
        StagedKey.kind == kind, StagedKey.import_id == import_id, StagedKey.key == key))


# On PostgreSQL one statement with two array parameters: the chunk's keys and lines (an
# executemany of 1,000 rows spends more time building the statement than the server does).
_STAGE_ARRAYS = text(
    "INSERT INTO import_staged_key (kind, import_id, key, line) "
    "SELECT :kind, :import_id, k, n FROM unnest(:keys, :lines) AS t(k, n) "
    "ON CONFLICT DO NOTHING RETURNING key"
).bindparams(bindparam("keys", type_=ARRAY(String)), bindparam("lines", type_=ARRAY(Integer)))


def _stage(kind: str, import_id: int, first_lines: dict[str, int]) -> set[str]:
    """Stage keys with their first lines; the keys that were new (INSERT … ON CONFLICT DO
    NOTHING RETURNING: the unique primary key decides)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return set(db.session.execute(_STAGE_ARRAYS, {
            "kind": kind, "import_id": import_id, "keys": list(first_lines),
            "lines": list(first_lines.values())}).scalars())
    table = StagedKey.__table__
    stmt = _dialect_insert(table).on_conflict_do_nothing().returning(table.c.key)
    return set(db.session.execute(stmt, [
        {"kind": kind, "import_id": import_id, "key": k, "line": line}
        for k, line in first_lines.items()]).scalars())


def _first_lines_of_chunk(rows: list[Row], kind: str, import_id: int,
                          key: Callable[[Row], str | None]) -> list[tuple[Row, int | None]]:
    keyed = [(row, key(row)) for row in rows]
    first_here: dict[str, int] = {}  # each key's first line within the chunk
    for row, k in keyed:
        if k is not None:
            first_here.setdefault(k, row.number)
    inserted: set[str] = set()
    if first_here:
        # INSERT … ON CONFLICT DO NOTHING RETURNING: the unique primary key says which keys
        # are new; one already staged (by an earlier chunk) keeps its line, looked up alone.
        inserted = _stage(kind, import_id, first_here)
    earlier = {k: _staged_line(kind, import_id, k) for k in first_here if k not in inserted}
    answer: list[tuple[Row, int | None]] = []
    for row, k in keyed:
        if k is None:
            answer.append((row, None))
        elif k in earlier:
            answer.append((row, earlier[k]))
        else:
            answer.append((row, None if first_here[k] == row.number else first_here[k]))
    return answer


def first_lines(rows: Iterable[Row], kind: str, import_id: int,
                key: Callable[[Row], str | None]) -> Iterator[tuple[Row, int | None]]:
    """Each row with the line of an earlier row of the file with the same ``key`` (None for
    the first, and for a row whose key is None: it is not counted). The keys go to
    :class:`StagedKey` a chunk at a time (one insert per chunk, and a look-up per key that
    an earlier chunk holds), in the
    caller's transaction; the caller drops them (``drop_staged_keys``) before and after."""
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= STAGE_CHUNK:
            yield from _first_lines_of_chunk(chunk, kind, import_id, key)
            chunk = []
    if chunk:
        yield from _first_lines_of_chunk(chunk, kind, import_id, key)


@contextmanager
def staged_keys_dropped_on_error(kind: str, import_id: int) -> Iterator[None]:
    """Around a pass that commits as it goes (a check with progress): an error rolls back
    what is not committed yet and drops the keys it committed, so none outlive the job."""
    try:
        yield
    except Exception:
        uow.rollback()
        drop_staged_keys(kind, import_id)
        uow.commit()
        raise
