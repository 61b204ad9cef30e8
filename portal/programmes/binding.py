"""Whether what legal signed off still holds: the event's entitlements and the computed amount
list hash to the SHA-256s recorded when the sign-off was asked.

(A minimal version for case generation; ``portal.programmes.services`` keeps the one the
programme pages use, and the integrator keeps one of the two: ``check_binding`` also counts,
in the same pass, the members case generation will create.)"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from portal.programmes import rules
from portal.programmes.models import Programme


@dataclass(frozen=True)
class Binding:
    holds: bool
    # Customers who become members: eligible, or written off below the threshold.
    to_create: int = 0


def becomes_member(row: rules.Row) -> bool:
    return row.eligible or row.excluded == "written_off"


def check_binding(programme: Programme) -> Binding:
    """The binding, and (when it holds) how many members the programme has: one pass."""
    if not programme.entitlements_sha256 or not programme.amounts_sha256:
        return Binding(False)
    if rules.entitlements_digest(programme.event_id) != programme.entitlements_sha256:
        return Binding(False)
    counted = [0]

    def counting(rows: Iterable[rules.Row]) -> Iterator[rules.Row]:
        for row in rows:
            if becomes_member(row):
                counted[0] += 1
            yield row

    holds = rules.amounts_digest(counting(rules.compute(programme))) == programme.amounts_sha256
    return Binding(holds, counted[0] if holds else 0)


def binding_holds(programme: Programme) -> bool:
    """True when the entitlements and the amounts are still the ones legal's snapshot bound."""
    return check_binding(programme).holds
