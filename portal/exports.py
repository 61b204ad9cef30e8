"""The one CSV writer: every CSV the portal hands out (case export, audit export, delivery
report, rejected import rows, archive files) is written here, and every streamed CSV download
is answered by :func:`response`.

Files are UTF-8 with a BOM, so spreadsheet tools read Chinese. Each value becomes a cell that
a spreadsheet shows and never runs: text starting with = + - @ TAB or CR gets a leading
apostrophe (the OWASP rule against CSV injection, e.g. a customer named "=HYPERLINK(…)" in an
imported file). Times are ISO 8601 in the portal's time zone (``PORTAL_TIMEZONE``) with their
offset, as the pages show them; money stays the exact decimal string.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import Response, current_app, stream_with_context

BOM = "\ufeff"
# A cell starting with one of these is run as a formula by Excel and LibreOffice.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 200


def local_time(value: datetime) -> str:
    """An aware time as ISO 8601 in the portal's time zone, with its offset."""
    return value.astimezone(ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])).isoformat()


def cell(value: object) -> str:
    """The value as a CSV cell that a spreadsheet shows as text, never runs."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float):
        return str(value)  # a number, not text: "-3" is not a formula
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def row(values: Iterable[object]) -> list[str]:
    return [cell(v) for v in values]


def stream(header: Iterable[object], rows: Iterable[Iterable[object]], *, bom: bool = True,
           delimiter: str = ",") -> Iterator[str]:
    """The CSV text in pieces of a few hundred rows, for a streamed response (a bank's file
    may want another delimiter, and no BOM when its encoding is not UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    if bom:
        buffer.write(BOM)
    writer.writerow(row(header))
    for n, values in enumerate(rows, start=1):
        writer.writerow(row(values))
        if n % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def response(filename: str, chunks: Iterator[str]) -> Response:
    """A CSV download (``text/csv; charset=utf-8``), sent as ``chunks`` (a service's generator
    over :func:`stream`) are written, inside the request's context."""
    return Response(stream_with_context(chunks), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={filename}"})


def to_bytes(header: Iterable[object], rows: Iterable[Iterable[object]]) -> bytes:
    """A whole CSV file, for files kept inside an archive."""
    return "".join(stream(header, rows)).encode("utf-8")
