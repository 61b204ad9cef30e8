"""What the sign-offs tell higher domains (receivers connected in ``portal.wiring``).

- ``requested``: a sign-off was asked of legal; sent with the request, inside the transaction
  that opens it (a receiver's rows are committed with it).
- ``decided``: legal decided; sent with the request (keyword ``actor``: the decider), inside
  the decision's transaction.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()
requested = _signals.signal("signoff-requested")
decided = _signals.signal("signoff-decided")
