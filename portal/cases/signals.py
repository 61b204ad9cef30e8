"""What the cases tell higher domains (receivers connected in ``portal.wiring``).

- ``assigned``: a case was given to an assignee; sent with the case (keyword ``actor``: who
  assigned it), inside the transaction that assigns it.
- ``customer_wrote``: the customer wrote on their case from their page; sent with the case
  (keyword ``note``: the new ``CaseNote``), inside the transaction that records it.
- ``approval_changed``: an edit sent an approved (or proposed) case back to in progress; sent
  with the case (keyword ``actor``), inside the transaction. A case created under a programme
  leaves it then and follows the normal case rules.
- ``paid``: a case's payment was recorded; sent with the case (keyword ``payment``), inside
  the transaction that records it.
- ``paid_many``: many cases' payments were recorded at once (``bulk_payments``: a bank's
  result file), instead of ``paid`` for each; sent with the actor who recorded them (keyword
  ``payments``: a list of (case, payment id) pairs), inside the transaction. A receiver of
  ``paid`` receives this one too, and handles the pairs in bulk.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()
assigned = _signals.signal("case-assigned")
customer_wrote = _signals.signal("case-customer-wrote")
approval_changed = _signals.signal("case-approval-changed")
paid = _signals.signal("case-paid")
paid_many = _signals.signal("cases-paid")
