"""Unclaimed members: the amount is held for customers who could not be reached or did not
answer (reason codes: "no_address", "bounced", "not_accepted", "payout_failed").

Minimal version (the report and its pages come with the unclaimed work of issue 14)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update

from portal.accounts import User
from portal.audit import services as audit
from portal.extensions import db
from portal.i18n import N_
from portal.models import utcnow
from portal.programmes.models import MemberStatus, ProgrammeMember

REASONS = ("no_address", "bounced", "not_accepted", "payout_failed")
# Who can still become unclaimed: not paid, not left, not already unclaimed or written off.
CLAIMABLE = (MemberStatus.CREATED, MemberStatus.ACCEPTED, MemberStatus.LATE)


def mark_unclaimed(member_ids: Iterable[int], reason: str, actor: User | None = None) -> int:
    """Mark these members unclaimed for ``reason`` (each by a conditional update, so a member
    paid or accepted meanwhile is left alone by a concurrent caller), one audit entry each;
    returns how many changed."""
    if reason not in REASONS:
        raise ValueError(f"unknown unclaimed reason {reason!r}")
    ids = sorted(set(member_ids))
    if not ids:
        return 0
    now = utcnow()
    changed = 0
    for member_id in ids:
        status = db.session.scalar(select(ProgrammeMember.status).where(
            ProgrammeMember.id == member_id))
        done = db.session.execute(
            update(ProgrammeMember)
            .where(ProgrammeMember.id == member_id, ProgrammeMember.status.in_(CLAIMABLE))
            .values(status=MemberStatus.UNCLAIMED, unclaimed_reason=reason, updated_at=now)
            .execution_options(synchronize_session=False)).rowcount
        if done == 1:
            changed += 1
            audit.record("programme.member_unclaimed", "programme_member", member_id,
                         N_("Programme member %(id)d unclaimed (%(reason)s); the amount is held",
                            id=member_id, reason=reason),
                         before={"status": status},
                         after={"status": MemberStatus.UNCLAIMED, "reason": reason},
                         actor=actor)
    return changed
