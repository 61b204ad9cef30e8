"""Refused attempts leave one audit entry each, written after the refused request's rollback:
the entry stays, the refused change does not (a second payment, a duplicate case, a decision
on one's own sign-off, a decision by a role that may not take it)."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.cases import services as cases
from portal.cases.models import Case, Payment
from portal.errors import Refusal
from portal.extensions import db
from portal.i18n import N_
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest, SignoffStatus
from portal.web import refuse
from tests.case_helpers import make_case, second_agent


def _refusals(action: str) -> list[AuditEntry]:
    db.session.rollback()  # read what the requests committed, not this session's own view
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _approved_case(users) -> Case:
    case = make_case(users, amount="300.00")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    cases.approve(case, actor=second_agent())
    db.session.commit()
    return case


def test_a_second_payment_is_refused_and_kept(client, auth, users) -> None:
    case = _approved_case(users)
    auth.login(Role.AGENT)
    first = client.post(f"/cases/{case.id}/pay", data={"amount": "300.00", "payout_ref": "P-1"})
    assert first.status_code == 302
    again = client.post(f"/cases/{case.id}/pay", data={"amount": "300.00", "payout_ref": "P-2"})
    assert again.status_code == 422 and "already been paid" in again.text
    [entry] = _refusals("case.payment.refused")
    assert entry.subject_type == "case" and entry.subject_id == str(case.id)
    assert case.ref in entry.summary and entry.actor_id == users[Role.AGENT].id
    assert db.session.scalar(select(func.count(Payment.id))) == 1
    assert db.session.scalar(select(Payment.payout_ref)) == "P-1"


def test_a_duplicate_case_is_refused_and_kept_without_the_order_reference(client, auth,
                                                                        users) -> None:
    case = make_case(users, order_ref="ORDER-SECRET-9")
    db.session.commit()
    auth.login(Role.AGENT)
    response = client.post(f"/cases/new/{case.customer_id}", data={
        "kind": "refund", "order_ref": "order-secret-9", "amount": "5", "currency": "CNY",
        "reason": "other"})
    assert response.status_code == 422
    [entry] = _refusals("case.duplicate.refused")
    assert entry.subject_id == str(case.id) and case.ref in entry.summary
    assert "SECRET" not in f"{entry.summary}{entry.after}".upper()  # no personal data
    assert db.session.scalar(select(func.count(Case.id))) == 1


def _signoff_requested_by_legal(users) -> SignoffRequest:
    case = make_case(users, amount="9000.00")
    request = signoffs.open_request(
        subject_type=cases.SUBJECT, subject_id=case.id, scope=f"case:{case.id}",
        title=N_("Case %(ref)s", ref=case.ref), snapshot=cases.snapshot(case),
        author_id=users[Role.AGENT].id,
        requested_by=users[Role.LEGAL])
    db.session.commit()
    return request


def test_deciding_ones_own_request_is_a_403_and_kept(client, auth, users) -> None:
    request = _signoff_requested_by_legal(users)
    auth.login(Role.LEGAL)
    response = client.post(f"/signoffs/{request.id}/decide", data={"decision": "approved"})
    assert response.status_code == 403
    assert "another legal reviewer must decide" in response.text
    [entry] = _refusals("signoff.decision.refused")
    assert entry.subject_type == "signoff" and entry.subject_id == str(request.id)
    assert entry.after == {"decision": "approved", "why": "own_request"}
    db.session.refresh(request)
    assert request.status == SignoffStatus.PENDING


def test_a_decision_by_another_role_is_a_403_and_kept(client, auth, users) -> None:
    request = _signoff_requested_by_legal(users)
    auth.login(Role.AGENT)
    response = client.post(f"/signoffs/{request.id}/decide", data={"decision": "approved"})
    assert response.status_code == 403
    [entry] = _refusals("access.refused")
    assert entry.subject_id == "signoffs.decide" and entry.actor_id == users[Role.AGENT].id
    assert entry.after["args"] == {"request_id": str(request.id)}
    assert entry.after["role"] == "agent"
    db.session.refresh(request)
    assert request.status == SignoffStatus.PENDING
    # Reading a page one may not see is no attempt to change anything.
    assert client.get("/admin/users/").status_code == 403
    assert len(_refusals("access.refused")) == 1


def test_the_refusal_is_committed_alone_after_the_rollback(app, users) -> None:
    """What the request changed before the rule said no is rolled back; the entry is not."""
    case = make_case(users)
    db.session.commit()
    with app.test_request_context("/", method="POST"):
        case.description = "changed before the refusal"
        db.session.flush()
        refuse(Refusal("no", action="case.payment.refused", subject_type="case",
                       subject_id=case.id, summary=N_("refused")))
    db.session.rollback()
    assert db.session.get(Case, case.id).description == ""
    assert len(_refusals("case.payment.refused")) == 1


def test_the_audit_page_filters_refused_attempts(client, auth, users) -> None:
    case = make_case(users)
    db.session.commit()
    auth.login(Role.AGENT)
    client.post(f"/cases/new/{case.customer_id}", data={
        "kind": "refund", "order_ref": "O-1", "amount": "5", "currency": "CNY",
        "reason": "other"})
    assert 'value="*.refused"' in client.get("/audit/").text
    rows = client.get("/audit/?action=*.refused",
                      headers={"HX-Request": "true", "HX-Target": "audit-results"})
    assert rows.status_code == 200
    assert "case.duplicate.refused" in rows.text and "case.open" not in rows.text
