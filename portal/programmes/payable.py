"""Which approved cases of a programme may be paid now (the payout batches ask this).

A case under a programme is payable when its member is ``accepted``, or ``created`` in a
proactive programme, or ``created`` below the programme's low-value threshold (paid without
asking, RG 277). A member who left (an agent adjusted the case) is no longer under the
programme: its case has no ``programme_id`` and follows the normal case rules. Unclaimed,
late and written-off members are never payable."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, or_

from portal.cases.models import Case
from portal.programmes.models import MemberStatus, Programme, ProgrammeMember


def payable_clause() -> Any:
    """A condition on ``Case`` rows: nothing under a programme stops paying it."""
    # The member is found by its case (one row, ``ix_programme_member_case_id``). Its
    # programme id is compared as ``programme_id + 0``, which no index serves: without table
    # statistics (SQLite right after case generation) the planner otherwise walks all the
    # programme's members for every case, 100,000 × 100,000 rows for a payout batch.
    under_programme_payable = exists().where(
        ProgrammeMember.case_id == Case.id,
        Programme.id == Case.programme_id,
        ProgrammeMember.programme_id + 0 == Programme.id,
        or_(ProgrammeMember.status == MemberStatus.ACCEPTED,
            and_(ProgrammeMember.status == MemberStatus.CREATED,
                 or_(Programme.mode == "proactive",
                     and_(Programme.low_value_threshold.is_not(None),
                          ProgrammeMember.amount < Programme.low_value_threshold)))),
    )
    return or_(Case.programme_id.is_(None), under_programme_payable)
