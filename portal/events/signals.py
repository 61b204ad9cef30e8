"""What the events tell higher domains (receivers connected in ``portal.wiring``).

- ``public_settings_changed``: an event's settings the public pages show changed (its public
  titles, whether its notice pages offer "Check my case" or take claims); sent with the event,
  after the commit.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()
public_settings_changed = _signals.signal("event-public-settings-changed")
