"""Errors services raise when a rule says no; views show ``message`` next to ``field``."""

from __future__ import annotations


class RuleViolation(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

