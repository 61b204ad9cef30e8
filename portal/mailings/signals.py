"""What the mailings tell higher domains (receivers connected in ``portal.wiring``).

Both are sent with the mailing's id as sender and the keywords ``audience`` (the mailing's
audience as stored, so a receiver can tell its own kind's mailings from the others at no
cost) and ``customer_ids``, inside the transaction that records what happened:

- ``delivered``: the mail server accepted the message to these customers (sent one by one, in
  the job's transaction that marks the recipient sent).
- ``undeliverable``: these customers get no message, with the keyword ``reason``:
  ``"no_address"`` (no e-mail address, when sending starts) or ``"bounced"`` (the mail
  server refused the address for good).
"""

from __future__ import annotations

from blinker import Namespace

NO_ADDRESS = "no_address"
BOUNCED = "bounced"

_signals = Namespace()
delivered = _signals.signal("mailing-delivered")
undeliverable = _signals.signal("mailing-undeliverable")
