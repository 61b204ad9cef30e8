"""What happens to a programme's member when its case moves (receivers of
``portal.cases.signals``, connected in ``portal.wiring``).

- An agent's edit sends an approved case back (``approval_changed``): the case leaves the
  programme. Its member is ``left``, the case's ``programme_id`` is cleared, and from then on
  the case follows the normal case rules (threshold, four eyes, legal sign-off).
- A case's payment is recorded (``paid``): its member, still under the programme, is ``paid``.
  Many payments at once (``paid_many``, a bank's result file) move their members in one
  UPDATE per programme and chunk, with one run of audit entries: 100,000 members one by one
  took minutes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import update
from sqlalchemy.orm.exc import StaleDataError

from portal.accounts import User
from portal.audit import services as audit
from portal.cases.models import Case, Payment
from portal.errors import Conflict
from portal.extensions import db
from portal.i18n import N_
from portal.models import among, utcnow
from portal.programmes.models import MemberStatus, ProgrammeMember

# A member in one of these has its case still under the programme.
UNDER_PROGRAMME = (MemberStatus.CREATED, MemberStatus.ACCEPTED, MemberStatus.UNCLAIMED,
                   MemberStatus.LATE)


def _flush() -> None:
    """The case's pending edit goes out first, refused as the case service refuses it when
    someone else saved in between."""
    try:
        db.session.flush()
    except StaleDataError:
        raise Conflict(_("Someone else changed this case at the same moment. Reload the page; "
                         "your change has not been saved.")) from None


def _move_member(case_id: int, programme_id: int, status: str) -> int | None:
    """The member's id if it moved to ``status`` (a conditional update: only from a status
    under the programme, so a paid member is never touched)."""
    return db.session.execute(
        update(ProgrammeMember)
        .where(ProgrammeMember.case_id == case_id, ProgrammeMember.programme_id == programme_id,
               ProgrammeMember.status.in_([str(s) for s in UNDER_PROGRAMME]))
        .values(status=status, updated_at=utcnow())
        .returning(ProgrammeMember.id)
        .execution_options(synchronize_session=False)).scalar()


def leave_programme(case: Case, actor: User | None = None, **_: Any) -> None:
    """Receiver of ``approval_changed``: the adjusted case leaves its programme."""
    programme_id = case.programme_id
    if programme_id is None:
        return
    _flush()
    member_id = _move_member(case.id, programme_id, MemberStatus.LEFT)
    case.programme_id = None
    _flush()
    audit.record("programme.member.left", "case", case.id,
                 N_("Case %(ref)s left programme %(programme)s after an edit; it follows the "
                    "normal case rules now", ref=case.ref, programme=programme_id),
                 before={"programme_id": programme_id},
                 after={"programme_id": None, "member_id": member_id}, actor=actor)


def member_paid(case: Case, payment: Payment | None = None, **_: Any) -> None:
    """Receiver of ``paid``: the member of a case still under its programme is paid."""
    if case.programme_id is None:
        return
    _flush()
    member_id = _move_member(case.id, case.programme_id, MemberStatus.PAID)
    if member_id is not None:
        audit.record("programme.member.paid", "programme_member", member_id,
                     N_("Programme %(programme)s: the member of case %(ref)s is paid",
                        programme=case.programme_id, ref=case.ref),
                     after={"status": str(MemberStatus.PAID), "case_id": case.id,
                            "payment_id": payment.id if payment else None})


IN_CHUNK = 500


def members_paid(actor: User | None, payments: list[tuple[Case, int]], **_: Any) -> None:
    """Receiver of ``paid_many``: :func:`member_paid` for many cases, in bulk. One audit entry
    per programme and chunk, on the programme, lists the members it paid as [member id, case
    id, payment id] (as case generation's ``programme.cases_created`` does): each case's own
    ``case.paid`` entry is there too, and an entry per member doubled the cost of a result
    file of 100,000 lines."""
    by_programme: dict[int, dict[int, int]] = defaultdict(dict)
    for case, payment_id in payments:
        if case.programme_id is not None:
            by_programme[case.programme_id][case.id] = payment_id
    if not by_programme:
        return
    _flush()
    table = ProgrammeMember.__table__
    entries = []
    for programme_id, cases in by_programme.items():
        ids = sorted(cases)
        for start in range(0, len(ids), IN_CHUNK):
            moved = sorted(db.session.execute(
                update(table)
                # ``programme_id + 0`` serves no index: the members are found by their
                # cases even without statistics (right after case generation), not by
                # walking all the programme's members for each chunk.
                .where(among(table.c.case_id, ids[start:start + IN_CHUNK]),
                       table.c.programme_id + 0 == programme_id,
                       table.c.status.in_([str(s) for s in UNDER_PROGRAMME]))
                .values(status=str(MemberStatus.PAID), updated_at=utcnow())
                .returning(table.c.id, table.c.case_id)).all(), key=lambda row: row[1])
            if moved:
                entries.append((programme_id, [[member_id, case_id, cases[case_id]]
                                               for member_id, case_id in moved]))
    audit.record_many("programme.members_paid", "programme", [
        (programme_id, N_("Programme %(programme)s: %(count)d members paid (their cases' "
                          "payments recorded)", programme=programme_id, count=len(members)),
         {"status": str(MemberStatus.PAID), "members": members})
        for programme_id, members in entries], actor=actor)
