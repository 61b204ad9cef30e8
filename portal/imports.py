"""Reading the CSV files people upload, without silently corrupting them.

The encoding is decided from the whole file and must then hold for all of it: a file that
mixes encodings is refused, naming its first bad line. Records come with the line they start
on (a quoted cell may span lines), and a record whose quotes are broken is an error of that
record instead of swallowing the rows after it into one cell.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flask_babel import gettext as _

from portal.config import MAX_UPLOAD_BYTES
from portal.errors import RuleViolation
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
