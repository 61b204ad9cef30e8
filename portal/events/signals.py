"""What the events tell higher domains (receivers connected in ``portal.wiring``).

- ``public_changed``: something the public pages show of an event changed (its public
  titles, whether its notices take claims); sent with no arguments after the commit.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()
public_changed = _signals.signal("event-public-changed")
