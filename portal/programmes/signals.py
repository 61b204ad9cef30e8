"""What the programmes domain tells higher domains and itself (receivers connected in
``portal.wiring``).

- ``entitlements_changed``: an event's entitlements changed (an import applied, an erasure);
  sent with the event id as sender, inside the transaction. A programme of that event whose
  sign-off bound the old list goes back to draft.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()
entitlements_changed = _signals.signal("programme-entitlements-changed")
