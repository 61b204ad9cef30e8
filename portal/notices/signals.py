"""What the notices domain tells the domains above it, which it never imports. Receivers are
connected in ``portal.wiring``."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# A notice was withdrawn (sender: the Notice; ``reason``, ``actor``). Sent inside the
# withdrawal's transaction: what receivers change is saved or undone with it.
withdrawn = _signals.signal("notice-withdrawn")

# What the public site shows changed: a publication, a withdrawal, a signed PDF now ready.
# Sent after the change is committed, so a page built by a receiver shows it.
public_content_changed = _signals.signal("notice-public-content-changed")

# A version was published, first or as an update (sender: the Notice; ``version_id``,
# ``emergency``). Sent inside the publication's transaction: the subscribers' deliveries
# are written with it.
published = _signals.signal("notice-published")
