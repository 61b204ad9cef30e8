"""What the cases add to a customer's timeline (``customers.people``): each case opened, each
reply e-mailed to the customer, each payment."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from portal.cases.models import LABELS, Case, CaseNote, Payment, ReplyStatus
from portal.customers.people import Entry
from portal.extensions import db
from portal.i18n import N_, term

REPLY_LABELS = {
    ReplyStatus.QUEUED: _l("queued"),
    ReplyStatus.SENDING: _l("being sent"),
    ReplyStatus.SENT: _l("sent"),
    ReplyStatus.FAILED: _l("not delivered"),
}


def entries(customer_ids: list[int]) -> list[Entry]:
    found = []
    cases = db.session.scalars(select(Case).where(Case.customer_id.in_(customer_ids)))
    for case in cases:
        link = {"endpoint": "cases.detail", "args": {"case_id": case.id}}
        found.append(Entry(case.created_at, "case", N_(
            "Case %(ref)s opened: %(kind)s of %(amount)s %(currency)s, order %(order)s",
            ref=case.ref, kind=term("case", case.kind), amount=str(case.amount),
            currency=case.currency, order=case.order_ref).html(), case.customer_id,
            str(LABELS[case.status]), **link))
    for note, case in db.session.execute(
            select(CaseNote, Case).join(Case, Case.id == CaseNote.case_id).where(
                Case.customer_id.in_(customer_ids), CaseNote.kind == "reply")):
        found.append(Entry(note.sent_at or note.created_at, "reply", _(
            "Reply to the customer on case %(ref)s", ref=case.ref), case.customer_id,
            str(REPLY_LABELS.get(note.mail_status, note.mail_status or "")),
            "cases.detail", {"case_id": case.id}))
    for payment, case in db.session.execute(
            select(Payment, Case).join(Case, Case.id == Payment.case_id).where(
                Case.customer_id.in_(customer_ids))):
        found.append(Entry(payment.paid_at, "payment", N_(
            "Paid %(amount)s %(currency)s on case %(ref)s (payout %(payout)s)",
            amount=str(payment.amount), currency=payment.currency, ref=case.ref,
            payout=payment.payout_ref).html(), case.customer_id, "", "cases.detail",
            {"case_id": case.id}))
    return found
