"""Errors services raise when a rule says no; views show ``message`` next to ``field``."""

from __future__ import annotations

from typing import Any

from blinker import Namespace

from portal.i18n import Message

_signals = Namespace()
# Sent with a :class:`Refusal` once the refused request's work is rolled back (by
# ``portal.web.refuse``, and by the access check for a refused change); ``portal.wiring``
# connects the audit trail's ``record_refusal``.
attempt_refused = _signals.signal("attempt-refused")


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


class Refusal(RuleViolation):
    """A refused attempt the audit trail keeps (deciding one's own sign-off, paying a case a
    second time, opening a duplicate case): ``action`` (ending in ``.refused``), the subject,
    a ``summary`` message (``N_``, as for ``audit.record``) and ``details`` (ids and codes, no
    personal data) describe it.
    ``status`` is what the view answers (403 for a refusal of who the user is); ``actor`` who
    tried (by default the signed-in user)."""

    def __init__(self, text: str | Message, *, action: str, subject_type: str,
                 subject_id: object, summary: Message, details: dict[str, Any] | None = None,
                 field: str | None = None, status: int = 422, actor: Any = None) -> None:
        super().__init__(text, field)
        if not action.endswith(".refused"):
            raise ValueError(f"a refusal's action ends in .refused, not {action!r}")
        self.action, self.subject_type, self.subject_id = action, subject_type, subject_id
        self.summary, self.details, self.status = summary, details or {}, status
        self.actor = actor
