"""Members whose amount is held because it could not be paid (minimal version: the failed
payouts; the programme helper's full module replaces it with the same signature)."""

from __future__ import annotations

from sqlalchemy import select, update

from portal.audit import services as audit
from portal.extensions import db
from portal.i18n import N_
from portal.models import utcnow
from portal.programmes.models import MemberStatus, ProgrammeMember

FAILED_PAYOUTS_LIMIT = 2  # payouts that failed this often: the member becomes unclaimed


def record_failed_payout(case_id: int) -> ProgrammeMember | None:
    """Count a failed payout of the member whose case this is; at the second, the member is
    ``unclaimed`` (reason ``payout_failed``) with the amount held. None when the case is
    under no programme member."""
    member = db.session.scalar(select(ProgrammeMember).where(ProgrammeMember.case_id == case_id))
    if member is None:
        return None
    db.session.execute(update(ProgrammeMember).where(ProgrammeMember.id == member.id).values(
        failed_payouts=ProgrammeMember.failed_payouts + 1, updated_at=utcnow()))
    db.session.refresh(member)
    if member.failed_payouts >= FAILED_PAYOUTS_LIMIT and member.status in (
            MemberStatus.CREATED, MemberStatus.ACCEPTED):
        changed = db.session.execute(
            update(ProgrammeMember).where(ProgrammeMember.id == member.id,
                                          ProgrammeMember.status == member.status)
            .values(status=MemberStatus.UNCLAIMED, unclaimed_reason="payout_failed",
                    updated_at=utcnow())).rowcount
        db.session.refresh(member)
        if changed:
            audit.record("programme_member.unclaimed", "programme", member.programme_id,
                         N_("Member %(member)d of programme %(programme)d unclaimed: payouts "
                            "failed %(count)d times; the amount is held",
                            member=member.id, programme=member.programme_id,
                            count=member.failed_payouts),
                         after={"member_id": member.id, "reason": "payout_failed"})
    else:
        audit.record("programme_member.payout_failed", "programme", member.programme_id,
                     N_("Payout to member %(member)d of programme %(programme)d failed "
                        "(%(count)d so far)", member=member.id, programme=member.programme_id,
                        count=member.failed_payouts),
                     after={"member_id": member.id, "failed_payouts": member.failed_payouts})
    return member
