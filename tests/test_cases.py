"""Case rules: transition table, money, references, thresholds, four eyes, exactly-once
payment, duplicates, optimistic locking, replies by e-mail."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from portal.accounts import Role
from portal.cases import rules, settings
from portal.cases import services as cases
from portal.cases.models import Case, CaseNote, Payment
from portal.errors import Conflict, RuleViolation
from portal.extensions import db
from portal.models import utcnow
from portal.signoffs import services as signoffs
from portal.signoffs.models import SignoffRequest
from tests.case_helpers import make_case, make_customer, second_agent

# --- the transition table -------------------------------------------------------------------


def test_table_covers_the_design_flow() -> None:
    moves = {(t.source, t.target) for t in rules.TRANSITIONS}
    for step in [("new", "in_progress"), ("in_progress", "proposed"),
                 ("in_progress", "awaiting_signoff"), ("awaiting_signoff", "approved"),
                 ("proposed", "approved"), ("approved", "paid"), ("paid", "closed")]:
        assert step in moves
    for source in rules.OPEN_BEFORE_PAYMENT:
        assert (source, "rejected") in moves and (source, "withdrawn") in moves
    # Nothing leaves a final state, and paid cases cannot be rejected or withdrawn.
    assert not [t for t in rules.TRANSITIONS if t.source in ("closed", "rejected", "withdrawn")]
    assert {t.target for t in rules.TRANSITIONS if t.source == "paid"} == {"closed"}


def test_buttons_come_from_the_table() -> None:
    agent = {t.action for t in rules.available("new", "agent")}
    assert agent == {"start", "reject", "withdraw"}
    assert rules.available("awaiting_signoff", "legal") == []  # legal decides via sign-off
    assert {t.action for t in rules.available("paid", "admin")} == {"close"}
    assert rules.available("closed", "admin") == []


def test_change_status_follows_the_table(app, users) -> None:
    case = make_case(users)
    with pytest.raises(RuleViolation, match="not possible"):
        cases.change_status(case, "close", actor=users[Role.AGENT])
    with pytest.raises(RuleViolation, match="not possible"):
        cases.change_status(case, "propose", actor=users[Role.AGENT])  # via its service only
    with pytest.raises(RuleViolation, match="role"):
        cases.change_status(case, "start", actor=users[Role.LEGAL])
    with pytest.raises(RuleViolation, match="comment is required") as err:
        cases.change_status(case, "reject", actor=users[Role.AGENT])
    assert err.value.field == "comment"
    cases.change_status(case, "start", actor=users[Role.AGENT])
    assert case.status == "in_progress"
    cases.change_status(case, "withdraw", comment="Customer withdrew", actor=users[Role.AGENT])
    assert case.status == "withdrawn"
    assert db.session.scalar(select(CaseNote.body)) == "Customer withdrew"


# --- money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("1280.5", Decimal("1280.50")), ("1,280.50", Decimal("1280.50")), ("0.01", Decimal("0.01")),
    ("10000000.00", Decimal("10000000.00")), (Decimal("7"), Decimal("7.00")),
])
def test_amounts_accepted(raw, expected) -> None:
    value = cases.parse_amount(raw)
    assert value == expected and isinstance(value, Decimal)
    assert value.as_tuple().exponent == -2


@pytest.mark.parametrize("raw", ["10.005", "0", "0.00", "-5", "10000000.01", "abc", "NaN",
                                 "Infinity", "", "1e3.5"])
def test_amounts_refused(raw) -> None:
    with pytest.raises(RuleViolation):
        cases.parse_amount(raw)


def test_floats_are_refused() -> None:
    with pytest.raises(RuleViolation, match="never floats"):
        cases.parse_amount(0.1 + 0.2)


def test_amounts_survive_the_database_exactly(app, users) -> None:
    case = make_case(users, amount="1234567.89")
    db.session.expire_all()
    stored = db.session.get(Case, case.id).amount
    assert stored == Decimal("1234567.89") and isinstance(stored, Decimal)


def test_currency_must_be_iso_4217(app, users) -> None:
    assert settings.parse_currency("usd") == "USD"
    with pytest.raises(RuleViolation, match="ISO 4217"):
        settings.parse_currency("RMB")


# --- references, SLA ---------------------------------------------------------------------------


def test_refs_are_sequential_and_unique_under_concurrency(app_factory, users) -> None:
    app = app_factory()
    with app.app_context():
        customer = make_customer(users)
        customer_id = customer.id
        db.session.commit()
    refs: list[str] = []
    errors: list[BaseException] = []
    together = threading.Barrier(2)

    def worker(offset: int) -> None:
        with app.app_context():
            try:
                from portal.customers.models import Customer

                together.wait(timeout=10)
                for n in range(8):
                    c = db.session.get(Customer, customer_id)
                    case = cases.open_case(c, cases.CaseInput(
                        "refund", f"O-{offset}-{n}", "10.00", "CNY", "other", "", None),
                        actor=db.session.get(type(users[Role.AGENT]), users[Role.AGENT].id))
                    db.session.commit()
                    refs.append(case.ref)
            except BaseException as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors  # on SQLite too: writers wait their turn, none may fail
    year = utcnow().year
    assert all(r.startswith(f"C-{year}-") and len(r) == len(f"C-{year}-00001") for r in refs)
    assert sorted(int(r.rsplit("-", 1)[1]) for r in refs) == list(range(1, 17))  # no gap


def test_due_date_from_the_severity_sla(app, users) -> None:
    case = make_case(users)  # the helper's event is sev1: 24 hours by default
    assert timedelta(hours=23, minutes=59) < case.due_at - case.created_at <= timedelta(hours=24)
    settings.set_sla("sev1", 4, actor=users[Role.ADMIN])
    later = make_case(users, customer=case.customer, order_ref="O-2")
    assert later.due_at - later.created_at <= timedelta(hours=4)
    assert not later.overdue
    later.due_at = utcnow() - timedelta(minutes=1)
    assert later.overdue


# --- duplicates --------------------------------------------------------------------------------


def test_one_open_case_per_customer_kind_and_order(app, users) -> None:
    case = make_case(users)
    with pytest.raises(cases.DuplicateCase) as err:
        make_case(users, customer=case.customer)
    assert err.value.existing_id == case.id and case.ref in err.value.message
    make_case(users, customer=case.customer, kind="compensation")  # another kind is fine
    cases.change_status(case, "reject", comment="Not eligible", actor=users[Role.AGENT])
    assert make_case(users, customer=case.customer).id != case.id  # closed ones don't count


def test_a_case_opened_meanwhile_elsewhere_is_refused_cleanly(app, users,
                                                              monkeypatch) -> None:
    """Two agents (two portals) opening the same case at once: the check saw no open case,
    the other one committed before this one's insert. The unique index refuses this one; the
    agent gets "already open" and the transaction still works (it was a 500)."""
    case = make_case(users)
    values = {c.name: getattr(case, c.name) for c in Case.__table__.columns if c.name != "id"}
    customer = case.customer
    db.session.delete(case)  # the race is on a fresh order: nothing is open yet
    db.session.commit()
    real_check = cases.open_case_for

    def check_then_the_other_commits(*args):
        found = real_check(*args)
        assert found is None
        with db.engine.begin() as conn:  # the other portal's case, committed meanwhile
            conn.execute(insert(Case).values(**{**values, "ref": "C-0000-99998"}))
        monkeypatch.setattr(cases, "open_case_for", real_check)
        return found

    monkeypatch.setattr(cases, "open_case_for", check_then_the_other_commits)
    with pytest.raises(cases.DuplicateCase) as err:
        make_case(users, customer=customer)
    assert "C-0000-99998" in err.value.message
    assert db.session.scalar(select(func.count(Case.id))) == 1  # the session still answers
    db.session.rollback()


def test_the_database_refuses_a_second_open_case(app, users) -> None:
    case = make_case(users)
    values = {c.name: getattr(case, c.name) for c in Case.__table__.columns if c.name != "id"}
    values.update(ref="C-0000-99999")
    with pytest.raises(IntegrityError):
        db.session.execute(insert(Case).values(**values))
        db.session.flush()
    db.session.rollback()


# --- proposals, four eyes, legal sign-off ------------------------------------------------------


def test_below_threshold_a_second_agent_approves(app, users) -> None:
    case = make_case(users, amount="4999.99")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    assert case.status == "proposed"
    with pytest.raises(RuleViolation, match="another agent"):
        cases.approve(case, actor=users[Role.AGENT])
    with pytest.raises(RuleViolation, match="role"):
        cases.approve(case, actor=users[Role.LEGAL])
    cases.approve(case, actor=second_agent())
    assert case.status == "approved" and case.approved_amount == Decimal("4999.99")


def test_at_threshold_legal_signs_off_the_exact_snapshot(app, users) -> None:
    case = make_case(users, amount="5000.00")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    assert case.status == "awaiting_signoff"
    request = db.session.get(SignoffRequest, case.signoff_id)
    assert request.snapshot["amount"] == "5000.00" and request.snapshot["currency"] == "CNY"
    assert request.snapshot["customer"]["external_ref"] == "K-1"
    with pytest.raises(RuleViolation, match="Only a proposed case"):
        cases.approve(case, actor=second_agent())  # above the threshold agents cannot approve
    signoffs.decide(request.id, "approved", "", actor=users[Role.LEGAL])
    assert case.status == "approved" and case.approved_by_id == users[Role.LEGAL].id


def test_changing_the_amount_voids_the_signoff(app, users) -> None:
    case = make_case(users, amount="8000.00")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    request_id = case.signoff_id
    cases.update_case(case, cases.CaseInput("refund", "O-1", "9000.00", "CNY", "other", "",
                                            users[Role.AGENT].id),
                      expected_version=case.lock_version, actor=users[Role.AGENT])
    assert case.status == "in_progress"
    assert db.session.get(SignoffRequest, request_id).status == "voided"
    with pytest.raises(RuleViolation, match="already been decided"):
        signoffs.decide(request_id, "approved", "", actor=users[Role.LEGAL])


def test_legal_returning_a_case_sends_it_back(app, users) -> None:
    case = make_case(users, amount="6000.00", currency="CNY")
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    signoffs.decide(case.signoff_id, "changes_requested", "Attach the order invoice",
                    actor=users[Role.LEGAL])
    assert case.status == "in_progress"
    assert "Attach the order invoice" in [n.body for n in case.notes]


def test_thresholds_are_per_currency_and_admin_set(app, users) -> None:
    assert settings.needs_signoff(Decimal("1000.00"), "USD")
    assert not settings.needs_signoff(Decimal("999.99"), "USD")
    assert settings.needs_signoff(Decimal("1.00"), "JPY")  # no threshold: always legal
    settings.set_threshold("JPY", "100000", actor=users[Role.ADMIN])
    assert not settings.needs_signoff(Decimal("1.00"), "JPY")
    with pytest.raises(RuleViolation):
        settings.set_threshold("JPY", "-1", actor=users[Role.ADMIN])


# --- payment -----------------------------------------------------------------------------------


def _approved(users, amount: str = "100.00") -> Case:
    case = make_case(users, amount=amount)
    cases.change_status(case, "start", actor=users[Role.AGENT])
    cases.propose(case, actor=users[Role.AGENT])
    cases.approve(case, actor=second_agent())
    return case


def test_paid_once_for_exactly_the_approved_amount(app, users) -> None:
    case = _approved(users)
    with pytest.raises(RuleViolation, match="exactly the approved amount") as err:
        cases.record_payment(case, amount="100.01", payout_ref="PAY-1", actor=users[Role.AGENT])
    assert err.value.field == "amount"
    with pytest.raises(RuleViolation, match="payout reference"):
        cases.record_payment(case, amount="100.00", payout_ref="", actor=users[Role.AGENT])
    cases.record_payment(case, amount="100", payout_ref="PAY-1", actor=users[Role.AGENT])
    db.session.commit()
    assert case.status == "paid" and case.payment.amount == Decimal("100.00")
    with pytest.raises(RuleViolation, match="already been paid"):
        cases.record_payment(case, amount="100.00", payout_ref="PAY-2", actor=users[Role.AGENT])
    cases.change_status(case, "close", actor=users[Role.AGENT])
    assert case.status == "closed"
    assert db.session.scalar(select(func.count(Payment.id))) == 1


def test_a_payment_made_meanwhile_elsewhere_is_refused_cleanly(app, users) -> None:
    """Two portals paying one case at once (found by tests/test_scale_out.py): the one that
    loses the race on the unique case_id gets the refusal, not a broken transaction (500)."""
    case = _approved(users)
    db.session.commit()
    assert case.payment is None  # this process saw the case unpaid …
    with db.engine.begin() as conn:  # … and another process paid it meanwhile
        conn.execute(insert(Payment.__table__).values(
            case_id=case.id, amount=Decimal("100.00"), currency="CNY", payout_ref="PAY-B",
            paid_at=utcnow()))
    with pytest.raises(RuleViolation, match="already been paid"):
        cases.record_payment(case, amount="100.00", payout_ref="PAY-A", actor=users[Role.AGENT])
    assert case.status == "approved"  # the session still answers: only the savepoint went
    db.session.rollback()
    assert db.session.scalars(select(Payment.payout_ref)).all() == ["PAY-B"]


def test_unapproved_cases_cannot_be_paid(app, users) -> None:
    case = make_case(users)
    with pytest.raises(RuleViolation, match="Only an approved case"):
        cases.record_payment(case, amount="100.00", payout_ref="PAY-1", actor=users[Role.AGENT])


def test_the_database_refuses_a_second_payment(app, users) -> None:
    case = _approved(users)
    cases.record_payment(case, amount="100.00", payout_ref="PAY-1", actor=users[Role.AGENT])
    db.session.commit()
    with pytest.raises(IntegrityError):
        db.session.execute(text(
            "INSERT INTO case_payment (case_id, amount, currency, payout_ref, paid_at) "
            "VALUES (:case, 100.00, 'CNY', 'PAY-OTHER', CURRENT_TIMESTAMP)"), {"case": case.id})
    db.session.rollback()
    assert db.session.scalar(select(func.count(Payment.id))) == 1


# --- optimistic locking --------------------------------------------------------------------------


def test_a_stale_form_overwrites_nothing(app, users) -> None:
    case = make_case(users)
    loaded_version = case.lock_version
    cases.update_case(case, cases.CaseInput("refund", "O-1", "120.00", "CNY", "other", "first",
                                            None), expected_version=loaded_version,
                      actor=users[Role.AGENT])
    with pytest.raises(Conflict):
        cases.update_case(case, cases.CaseInput("refund", "O-1", "150.00", "CNY", "other",
                                                "second", None),
                          expected_version=loaded_version, actor=users[Role.ADMIN])
    db.session.expire_all()
    assert db.session.get(Case, case.id).amount == Decimal("120.00")


def test_concurrent_writers_are_caught_by_the_version_column(app_factory, users) -> None:
    app = app_factory()
    with app.app_context():
        case_id = make_case(users).id
        db.session.commit()
    with app.app_context():
        mine = db.session.get(Case, case_id)
        # Someone else saves in between, through another connection.
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE case_file SET description = 'theirs', "
                              "lock_version = lock_version + 1 WHERE id = :id"), {"id": case_id})
        with pytest.raises(Conflict):
            cases.update_case(mine, cases.CaseInput("refund", "O-1", "999.00", "CNY", "other",
                                                    "mine", None),
                              expected_version=None, actor=users[Role.AGENT])
        db.session.rollback()
        assert db.session.get(Case, case_id).description == "theirs"
        db.session.remove()


# --- notes and replies -------------------------------------------------------------------------


@pytest.mark.integration
def test_reply_is_emailed_once_through_the_worker(app, users, run_worker, smtp_server) -> None:
    from portal.cases import tasks
    from portal.mail.devsmtp import read_messages

    app.config.update(SMTP_HOST=smtp_server["host"], SMTP_PORT=smtp_server["port"])
    case = make_case(users)
    cases.add_note(case, "Checked the order.", actor=users[Role.AGENT])
    note = cases.add_reply(case, "您的退款正在处理。", actor=users[Role.AGENT])
    assert tasks.queue_reply(note.id)
    run_worker()
    note = db.session.get(CaseNote, note.id)
    assert note.mail_status == "sent" and note.message_id
    [message] = read_messages(smtp_server["dir"])
    assert message["To"] == "kunde@example.com" and case.ref in message["Subject"]
    body = message.get_content()
    assert "您的退款正在处理。" in body and "王芳" in body
    assert "Checked the order." not in body  # internal notes stay inside
    assert tasks.send_reply_job(note.id) is None  # a second run sends nothing
    assert len(read_messages(smtp_server["dir"])) == 1


def test_reply_needs_an_address(app, users) -> None:
    customer = make_customer(users, email="")
    case = make_case(users, customer=customer)
    with pytest.raises(RuleViolation, match="no e-mail"):
        cases.add_reply(case, "Hello", actor=users[Role.AGENT])


# --- bulk ----------------------------------------------------------------------------------------


def test_bulk_actions_report_per_item(app, users) -> None:
    paid = _approved(users)
    cases.record_payment(paid, amount="100.00", payout_ref="PAY-9", actor=users[Role.AGENT])
    open_case = make_case(users, customer=paid.customer, order_ref="O-7")
    results = cases.bulk_close([paid.id, open_case.id], actor=users[Role.AGENT])
    assert [(r.ref, r.ok) for r in results] == [(paid.ref, True), (open_case.ref, False)]
    assert paid.status == "closed" and open_case.status == "new"
    other = second_agent()
    results = cases.bulk_assign([paid.id, open_case.id], other.id, actor=users[Role.ADMIN])
    assert [(r.ref, r.ok) for r in results] == [(paid.ref, False), (open_case.ref, True)]
    assert open_case.assignee_id == other.id
    with pytest.raises(RuleViolation):
        cases.bulk_assign([open_case.id], users[Role.LEGAL].id, actor=users[Role.ADMIN])
