"""Whether what legal signed off still holds: the event's entitlements and the computed amount
list hash to the SHA-256s recorded when the sign-off was asked.

(A minimal version for case generation; ``portal.programmes.services`` keeps the one the
programme pages use, and the integrator keeps one of the two.)"""

from __future__ import annotations

from portal.programmes import rules
from portal.programmes.models import Programme


def binding_holds(programme: Programme) -> bool:
    """True when the entitlements and the amounts are still the ones legal's snapshot bound."""
    if not programme.entitlements_sha256 or not programme.amounts_sha256:
        return False
    if rules.entitlements_digest(programme.event_id) != programme.entitlements_sha256:
        return False
    return rules.amounts_digest(rules.compute(programme)) == programme.amounts_sha256
