"""What the cases tell higher domains (receivers connected in ``portal.wiring``).

- ``assigned``: a case was given to an assignee; sent with the case (keyword ``actor``: who
  assigned it), inside the transaction that assigns it.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()
assigned = _signals.signal("case-assigned")
