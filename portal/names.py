"""Finding people's names and contact details in free text, and scrubbing them out.

One rule for everything that looks for a person in text (the post-mortem's blameless check,
erasure): a Latin-script name, address or number counts only as a whole word ("Li" is not in
"client", "bob@example.com" is not in "jimbob@example.com"); a name in Chinese (or another CJK
script, written without spaces) counts anywhere. Matching ignores case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

# Shorter values would match inside ordinary words.
MIN_LENGTH = 2
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"[{CJK}]")


def _is_cjk(value: str) -> bool:
    return _CJK_CHAR.search(value) is not None


def _in_word(char: str) -> bool:
    """A letter or digit of a word a Latin value could sit inside; a CJK character is not one
    ("联系Li Na" names Li Na)."""
    return (char.isalnum() or char == "_") and not _is_cjk(char)


def _whole_word(text: str, start: int, end: int) -> bool:
    """Nothing of a word, or of an address ("jimbob@x", "x.li@y"), continues the match.
    (Checked here, not in the expression: a CJK class makes each compile cost ~10 ms.)"""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return not (_in_word(before) or before in "@.-" or _in_word(after) or after in "@-")


@lru_cache(maxsize=256)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so a full name wins over a part of it.
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)


def _spans(text: str, values: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    """Where ``text`` mentions one of ``values``: whole words, or anywhere for CJK values."""
    pattern, pos = _pattern(values), 0
    while found := pattern.search(text, pos):
        start, end = found.span()
        if _is_cjk(found.group()) or _whole_word(text, start, end):
            yield start, end
            pos = end
            continue
        # A shorter value may still be a whole word here ("Li" in "Li Nax" next to "Li Na").
        shorter = next((start + len(v) for v in sorted(values, key=len, reverse=True)
                        if len(v) < end - start and text[start:start + len(v)].casefold()
                        == v.casefold() and _whole_word(text, start, start + len(v))), None)
        if shorter is not None:
            yield start, shorter
            pos = shorter
        else:
            pos = start + 1


def _candidates(values: Iterable[str | None]) -> list[str]:
    found = {v.strip() for v in values if v and len(v.strip()) >= MIN_LENGTH}
    return sorted(found)


def mentions(text: str, value: str) -> bool:
    """Whether ``text`` mentions ``value`` (a whole word, or anywhere for a CJK name)."""
    value = value.strip()
    if len(value) < MIN_LENGTH or value.casefold() not in text.casefold():
        return False
    return next(_spans(text, (value,)), None) is not None


def first_mentioned(text: str, values: Iterable[str | None]) -> str | None:
    """The first of ``values`` that ``text`` mentions, if any."""
    for value in values:
        if value and mentions(text, value):
            return value.strip()
    return None


class Scrubber:
    """Replaces every mention of some values, in strings and in the strings nested in lists
    and dicts. Cheap on text that mentions none of them: a substring test comes first."""

    def __init__(self, values: Iterable[str | None], replacement: str) -> None:
        self.values = _candidates(values)
        self.folded = [(v, v.casefold()) for v in self.values]
        self.replacement = replacement

    def text(self, value: str) -> str:
        folded = value.casefold()
        present = tuple(v for v, f in self.folded if f in folded)
        if not present:
            return value
        parts, last = [], 0
        for start, end in _spans(value, present):
            parts += [value[last:start], self.replacement]
            last = end
        return "".join(parts) + value[last:] if parts else value

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        return value
