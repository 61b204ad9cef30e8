"""Errors services raise when a rule says no; views show ``message`` next to ``field``."""

from __future__ import annotations

from portal.i18n import Message


class RuleViolation(Exception):
    """``text`` is a string or a ``Message``; ``message`` reads it in the current language,
    so a reason raised in a job can be stored as its key and shown in the reader's."""

    def __init__(self, text: str | Message, field: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.field = field

    @property
    def message(self) -> str:
        return str(self.text)


class Conflict(RuleViolation):
    """Someone else changed the record since the form was loaded (optimistic locking)."""
