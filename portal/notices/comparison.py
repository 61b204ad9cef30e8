"""Two versions of a notice side by side, line by line, per language."""

from __future__ import annotations

import difflib

from portal.notices.models import CONTENT_LOCALES, Notice

Row = tuple[str, str, str]


def pair(notice: Notice, a: int | None, b: int | None) -> tuple[int, int]:
    """The version numbers to compare: those asked for when they exist, else the latest and
    the one before it."""
    numbers = [v.number for v in notice.versions]
    left = a if a in numbers else max(numbers[-1] - 1, 1)
    right = b if b in numbers else numbers[-1]
    return left, right


def compare(notice: Notice, a: int, b: int) -> list[tuple[str, list[Row]]]:
    """(locale, rows) for each content language: title and body of version ``a`` against
    version ``b``."""
    by_number = {v.number: v for v in notice.versions}
    old, new = by_number[a].content(), by_number[b].content()
    sections = []
    for locale in CONTENT_LOCALES:
        left = old.get(locale, {"title": "", "body": ""})
        right = new.get(locale, {"title": "", "body": ""})
        rows = side_by_side(f"{left['title']}\n\n{left['body']}",
                            f"{right['title']}\n\n{right['body']}")
        sections.append((locale, rows))
    return sections


def side_by_side(left: str, right: str) -> list[Row]:
    """Rows of (kind, left line, right line); kind is equal, changed, added or removed."""
    a, b = left.splitlines(), right.splitlines()
    rows: list[Row] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [("equal", a[i], b[j]) for i, j in zip(range(i1, i2), range(j1, j2),
                                                           strict=True)]
        elif op == "replace":
            for k in range(max(i2 - i1, j2 - j1)):
                rows.append(("changed", a[i1 + k] if i1 + k < i2 else "",
                             b[j1 + k] if j1 + k < j2 else ""))
        elif op == "delete":
            rows += [("removed", a[i], "") for i in range(i1, i2)]
        else:
            rows += [("added", "", b[j]) for j in range(j1, j2)]
    return rows
