"""Two versions of a notice side by side, paragraph by paragraph, per language; inside a
changed paragraph, the changed characters (Chinese) or words (English) are marked.

The standard library's ``difflib`` does both passes: paragraphs are matched first, then the
tokens of each changed pair. A token is a Latin word or number, a run of spaces, or any other
single character (so each Chinese character is one). No third-party diff library is needed for
texts of a notice's size (at most 50,000 characters); ``diff-match-patch`` would add a
dependency for a semantic clean-up that word and character tokens already give.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from portal.extensions import db
from portal.notices.models import CONTENT_LOCALES, Notice, NoticeVersion
from portal.notices.services import SUBJECT
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest

# (op, text): op is "same", "del" (only in the older version) or "ins" (only in the newer).
Segment = tuple[str, str]
# A word or number in a Latin script (with accents), a run of white space, or one character.
_TOKEN = re.compile(r"[0-9A-Za-z\u00C0-\u024F'’]+|\s+|.", re.DOTALL)
# Below this similarity a changed paragraph is shown as replaced whole, not as confetti.
_SIMILAR_ENOUGH = 0.3


@dataclass(frozen=True)
class Row:
    """One paragraph line: kind is equal, changed, added or removed; each side its segments."""

    kind: str
    left: list[Segment]
    right: list[Segment]


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
    return compare_versions(by_number[a], by_number[b])


def compare_versions(older: NoticeVersion, newer: NoticeVersion) -> list[tuple[str, list[Row]]]:
    """(locale, rows) for each content language of ``older`` against ``newer``."""
    old, new = older.content(), newer.content()
    sections = []
    for locale in CONTENT_LOCALES:
        left = old.get(locale, {"title": "", "body": ""})
        right = new.get(locale, {"title": "", "body": ""})
        rows = side_by_side(f"{left['title']}\n\n{left['body']}",
                            f"{right['title']}\n\n{right['body']}")
        sections.append((locale, rows))
    return sections


def last_approved_before(version: NoticeVersion) -> NoticeVersion | None:
    """The latest earlier version of the notice that legal approved, if any."""
    earlier = [v for v in version.notice.versions if v.number < version.number]
    approved = signoffs.ever_granted(SUBJECT, [v.id for v in earlier])
    return next((v for v in reversed(earlier) if v.id in approved), None)


def signoff_changes(request: SignoffRequest) -> dict[str, object]:
    """For legal's decision page (registered by ``portal.wiring``): the version under review
    against the last approved one, or that it is the first to be reviewed."""
    version = db.session.get(NoticeVersion, request.subject_id)
    previous = last_approved_before(version)
    return {"template": "notices/_signoff_changes.html", "version": version,
            "previous": previous,
            "sections": compare_versions(previous, version) if previous else []}


def side_by_side(left: str, right: str) -> list[Row]:
    """The rows of two texts, line against line; a changed pair of lines carries the inline
    difference of its tokens."""
    a, b = left.splitlines(), right.splitlines()
    rows: list[Row] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [Row("equal", [("same", a[i])], [("same", b[j])])
                     for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
        elif op == "replace":
            for k in range(max(i2 - i1, j2 - j1)):
                old = a[i1 + k] if i1 + k < i2 else ""
                new = b[j1 + k] if j1 + k < j2 else ""
                rows.append(Row("changed", *inline(old, new)))
        elif op == "delete":
            rows += [Row("removed", [("del", a[i])], []) for i in range(i1, i2)]
        else:
            rows += [Row("added", [], [("ins", b[j])]) for j in range(j1, j2)]
    return rows


def inline(old: str, new: str) -> tuple[list[Segment], list[Segment]]:
    """The segments of ``old`` and of ``new``, the differing tokens marked "del" and "ins".
    Paragraphs too different to compare usefully are marked whole."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if old and new and matcher.ratio() < _SIMILAR_ENOUGH:
        return [("del", old)], [("ins", new)]
    left: list[Segment] = []
    right: list[Segment] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            _append(left, "same", "".join(a[i1:i2]))
            _append(right, "same", "".join(b[j1:j2]))
            continue
        _append(left, "del", "".join(a[i1:i2]))
        _append(right, "ins", "".join(b[j1:j2]))
    return left, right


def _append(segments: list[Segment], op: str, text: str) -> None:
    """Add ``text``, merged into the last segment when it has the same op."""
    if not text:
        return
    if segments and segments[-1][0] == op:
        segments[-1] = (op, segments[-1][1] + text)
    else:
        segments.append((op, text))
