"""Finding people's names and contact details in free text, and scrubbing them out.

One rule for everything that looks for a person in text (the post-mortem's blameless check,
erasure): a Latin-script name, address or number counts only as a whole word ("Li" is not in
"client", "bob@example.com" is not in "jimbob@example.com"); a name in Chinese (or another CJK
script, written without spaces) counts anywhere. Matching ignores case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# Shorter values would match inside ordinary words.
MIN_LENGTH = 2
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"[{CJK}]")
# A letter or digit of a word a Latin value could sit inside; a CJK character is not one
# ("联系Li Na" names Li Na), nor is punctuation, except the characters of an address.
_WORD = rf"[^\W{CJK}]"
_BEFORE = rf"(?<!{_WORD})(?<![@.\-])"
_AFTER = rf"(?!{_WORD})(?![@\-])"


def _fragment(value: str) -> str:
    """The regular expression of one value, with word boundaries unless it is CJK."""
    if _CJK_CHAR.search(value):
        return re.escape(value)
    return _BEFORE + re.escape(value) + _AFTER


@lru_cache(maxsize=256)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so a full name wins over a part of it.
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(_fragment(v) for v in ordered), re.IGNORECASE)


def _candidates(values: Iterable[str | None]) -> list[str]:
    found = {v.strip() for v in values if v and len(v.strip()) >= MIN_LENGTH}
    return sorted(found)


def mentions(text: str, value: str) -> bool:
    """Whether ``text`` mentions ``value`` (a whole word, or anywhere for a CJK name)."""
    value = value.strip()
    if len(value) < MIN_LENGTH or value.casefold() not in text.casefold():
        return False
    return _pattern((value,)).search(text) is not None


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
        return _pattern(present).sub(lambda _m: self.replacement, value)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        return value
