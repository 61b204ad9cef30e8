"""Payout batches: which cases a batch takes, maker–checker, release once, cancel frees the
cases, and who may reach the pages."""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.customers import payout
from portal.errors import Conflict, Refusal, RuleViolation
from portal.extensions import db
from portal.payouts import services
from portal.payouts.models import BatchStatus, PayoutBatch, PayoutLine
from portal.programmes.models import Entitlement
from tests.case_helpers import make_case, make_customer
from tests.notice_helpers import make_event
from tests.payout_helpers import ACCOUNT, approved_case, confirm_bank, second_finance


def _prepare(users, method: str = "bank", currency: str = "CNY", programme_id=None):
    return services.prepare_batch(programme_id=programme_id, currency=currency, method=method,
                                  actor=users[Role.FINANCE])


def _lines(batch: PayoutBatch) -> list[PayoutLine]:
    return list(db.session.scalars(select(PayoutLine).where(PayoutLine.batch_id == batch.id)
                                   .order_by(PayoutLine.id)))


def _actions(subject_id: int) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.subject_type == "payout_batch", AuditEntry.subject_id == str(subject_id))
        .order_by(AuditEntry.id)))


def test_a_bank_batch_takes_the_approved_cases_of_its_currency_with_confirmed_details(
        app, users) -> None:
    event = make_event()
    first = approved_case(users, "100.10", event=event, ref="K-1")
    second = approved_case(users, "0.05", event=event, ref="K-2")
    approved_case(users, "50.00", event=event, ref="K-3", bank=None)  # original method
    approved_case(users, "70.00", "USD", event=event, ref="K-4")  # another currency
    waiting = make_case(users, customer=make_customer(users, "K-5", event, "k5@example.com"))
    confirm_bank(waiting.customer)  # not approved yet
    batch = _prepare(users)
    lines = _lines(batch)
    assert [line.case_id for line in lines] == [first.id, second.id]
    assert batch.line_count == 2 and batch.control_sum == Decimal("100.15")
    assert isinstance(batch.control_sum, Decimal)
    assert batch.ref.startswith("PB-") and batch.status == BatchStatus.PREPARED
    for line, case in zip(lines, (first, second), strict=True):
        assert line.amount == case.approved_amount and line.currency == "CNY"
        assert len(line.end_to_end_id) <= 35 and case.ref in line.end_to_end_id
        # The customer's confirmed details, copied sealed: they open for that customer only.
        assert line.payout_sealed == payout.details_for(case.customer).sealed
        assert payout.unseal(case.customer_id, line.payout_sealed).account == ACCOUNT
    assert _actions(batch.id) == ["payout_batch.prepare"]
    original = _prepare(users, method="original")
    assert original.line_count == 1 and original.control_sum == Decimal("50.00")
    assert _lines(original)[0].payout_sealed is None


def test_entitlement_details_count_only_when_the_customer_confirmed_none(app, users) -> None:
    event = make_event()
    from_file = approved_case(users, "10.00", event=event, ref="K-1", bank=None)
    db.session.delete(payout.details_for(from_file.customer))  # confirmed nothing
    chose_original = approved_case(users, "20.00", event=event, ref="K-2", bank=None)
    for case in (from_file, chose_original):
        account = payout.BankAccount("Li Lei", "Bank", "6222000011112222", False)
        db.session.add(Entitlement(event_id=event.id, customer_id=case.customer_id,
                                   order_ref=case.order_ref, basis_amount=Decimal("5.00"),
                                   currency="CNY", basis_date=date(2026, 1, 1),
                                   payout_sealed=payout.seal(case.customer_id, account)))
    db.session.flush()
    batch = _prepare(users)
    [line] = _lines(batch)
    assert line.case_id == from_file.id
    assert payout.unseal(from_file.customer_id, line.payout_sealed).account == "6222000011112222"
    assert _prepare(users, method="original").line_count == 1  # the one who chose original


def test_a_bank_batch_needs_details_and_nothing_is_batched_twice(app, users) -> None:
    approved_case(users, "10.00", ref="K-1", bank=None)
    with pytest.raises(RuleViolation, match="No approved case"):
        _prepare(users)  # the only case has no bank account
    approved_case(users, "12.00", ref="K-2")
    assert _prepare(users).line_count == 1
    with pytest.raises(RuleViolation, match="No approved case"):
        _prepare(users)  # its case is in a live batch already
    assert db.session.scalar(select(func.count()).select_from(PayoutBatch)) == 1


def test_bad_choices_are_refused_with_the_field(app, users) -> None:
    approved_case(users)
    for kwargs, field in (({"method": "cash"}, "method"), ({"currency": "RMB1"}, "currency"),
                          ({"programme_id": 999}, "programme_id")):
        with pytest.raises(RuleViolation) as refused:
            _prepare(users, **kwargs)
        assert refused.value.field == field
    for role in (Role.AGENT, Role.LEGAL, Role.ADMIN):
        with pytest.raises(RuleViolation):
            services.prepare_batch(programme_id=None, currency="CNY", method="bank",
                                   actor=users[role])


def test_the_preparer_cannot_release_another_finance_user_or_an_admin_can(app, users) -> None:
    approved_case(users, ref="K-1")
    batch = _prepare(users)
    with pytest.raises(Refusal) as refused:
        services.release_batch(batch, actor=users[Role.FINANCE])
    assert refused.value.status == 403 and "another finance user" in refused.value.message
    for role in (Role.AGENT, Role.LEGAL):
        with pytest.raises(RuleViolation):
            services.release_batch(batch, actor=users[role])
    checker = second_finance()
    services.release_batch(batch, actor=checker, expected_version=batch.lock_version)
    assert batch.status == BatchStatus.RELEASED and batch.released_by_id == checker.id
    with pytest.raises(RuleViolation, match="Only a prepared batch"):
        services.release_batch(batch, actor=users[Role.ADMIN])
    approved_case(users, ref="K-2")
    by_admin = _prepare(users)
    services.release_batch(by_admin, actor=users[Role.ADMIN])
    assert by_admin.released_by_id == users[Role.ADMIN].id
    assert _actions(batch.id) == ["payout_batch.prepare", "payout_batch.release"]


def test_a_stale_page_cannot_release(app, users) -> None:
    approved_case(users)
    batch = _prepare(users)
    with pytest.raises(Conflict):
        services.release_batch(batch, actor=second_finance(),
                               expected_version=batch.lock_version - 1)
    assert batch.status == BatchStatus.PREPARED


def test_cancel_frees_the_cases_and_only_a_prepared_batch_is_cancelled(app, users) -> None:
    case = approved_case(users)
    batch = _prepare(users)
    assert services.cancel_batch(batch, actor=users[Role.FINANCE]) == 1
    assert batch.status == BatchStatus.CANCELLED and _lines(batch) == []
    assert batch.line_count == 1  # the batch keeps what it held; the audit the lines' digest
    again = _prepare(users)
    assert [line.case_id for line in _lines(again)] == [case.id]
    services.release_batch(again, actor=second_finance())
    with pytest.raises(RuleViolation, match="Only a prepared batch"):
        services.cancel_batch(again, actor=users[Role.ADMIN])
    assert _actions(batch.id) == ["payout_batch.prepare", "payout_batch.cancel"]


def _postgresql(app) -> bool:
    return db.engine.dialect.name == "postgresql"


def _in_threads(app_factory, work, count: int = 2, load=lambda index: None) -> list[object]:
    """In ``count`` threads, each with its own app and session: ``load(index)`` (what the
    page showed), then all at once ``work(index, loaded)``; what each returned or raised."""
    results: list[object] = [None] * count
    barrier = threading.Barrier(count)
    apps = [app_factory() for _ in range(count)]  # made here: slow on a busy machine

    def run(index: int) -> None:
        with apps[index].app_context():
            try:
                loaded = load(index)
                barrier.wait(timeout=60)
                results[index] = work(index, loaded)
                db.session.commit()
            except Exception as exc:  # what the loser is told
                db.session.rollback()
                results[index] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_two_releases_at_once_one_wins(app, app_factory, users) -> None:
    if not _postgresql(app):
        pytest.skip("concurrent writers: PostgreSQL (SQLite serialises the whole database)")
    from portal.accounts import User
    from portal.auth import services as auth

    approved_case(users)
    batch = _prepare(users)
    checkers = [second_finance(), auth.create_user("finance3@example.com", "Finance Three",
                                                   Role.FINANCE, "correct-horse-battery",
                                                   must_change_password=False)[0]]
    db.session.commit()
    batch_id, checker_ids = batch.id, [c.id for c in checkers]

    def release(index: int, mine: PayoutBatch) -> str:
        services.release_batch(mine, actor=db.session.get(User, checker_ids[index]))
        time.sleep(0.2)  # hold the row while the other tries
        return "released"

    # Both pages showed the batch prepared; both press "release" at once.
    results = _in_threads(app_factory, release,
                          load=lambda _i: db.session.get(PayoutBatch, batch_id))
    assert sorted(map(type, results), key=str) == sorted([str, Conflict], key=str), results
    [lost] = [r for r in results if isinstance(r, Conflict)]
    assert "at the same moment" in lost.message
    db.session.expire_all()
    batch = db.session.get(PayoutBatch, batch_id)
    assert batch.status == BatchStatus.RELEASED and batch.released_by_id in checker_ids
    assert _actions(batch_id).count("payout_batch.release") == 1


def test_two_batches_prepared_at_once_never_share_a_case(app, app_factory, users) -> None:
    if not _postgresql(app):
        pytest.skip("concurrent writers: PostgreSQL (SQLite serialises the whole database)")
    from portal.accounts import User

    for n in range(5):
        approved_case(users, ref=f"K-{n}")
    finance_ids = [users[Role.FINANCE].id, second_finance().id]
    db.session.commit()

    def prepare(index: int, _loaded: object) -> int:
        batch = services.prepare_batch(programme_id=None, currency="CNY", method="bank",
                                       actor=db.session.get(User, finance_ids[index]))
        return batch.line_count

    results = _in_threads(app_factory, prepare)
    made = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, RuleViolation)]
    assert made == [5] and len(refused) == 1, results
    assert ("another batch at the same moment" in refused[0].message
            or "No approved case" in refused[0].message)
    db.session.expire_all()
    live = db.session.scalar(select(func.count()).select_from(PayoutLine))
    assert live == 5


# --- the pages -------------------------------------------------------------------------------

def test_prepare_page_counts_first_then_creates(client, auth, users) -> None:
    approved_case(users, "30.00", ref="K-1")
    approved_case(users, "12.50", ref="K-2")
    auth.login(Role.FINANCE)
    page = client.get("/payouts/new?programme_id=&currency=CNY&method=bank&lang=en")
    assert page.status_code == 200
    assert "42.50 CNY" in page.text and db.session.scalar(
        select(func.count()).select_from(PayoutBatch)) == 0
    created = client.post("/payouts/new", data={"programme_id": "", "currency": "CNY",
                                                "method": "bank"})
    assert created.status_code == 302
    batch = db.session.scalar(select(PayoutBatch))
    assert created.headers["Location"].endswith(f"/payouts/{batch.id}")
    shown = client.get(f"/payouts/{batch.id}?lang=en").text
    assert batch.ref in shown and "•••• 0128" in shown and ACCOUNT not in shown
    assert "another finance user or an admin releases it" in shown
    assert f"/payouts/{batch.id}/release" not in shown  # no button for the preparer
    zh = client.get(f"/payouts/{batch.id}?lang=zh_CN").text
    assert "付款批次" in zh
    empty = client.post("/payouts/new", data={"programme_id": "", "currency": "USD",
                                              "method": "bank"})
    assert empty.status_code == 422 and "No approved case" in empty.text


def test_release_over_http_is_four_eyes(client, auth, users) -> None:
    approved_case(users)
    batch = _prepare(users)
    db.session.commit()
    auth.login(Role.FINANCE)
    refused = client.post(f"/payouts/{batch.id}/release")
    assert refused.status_code == 403
    db.session.expire_all()
    assert db.session.get(PayoutBatch, batch.id).status == BatchStatus.PREPARED
    assert "payout_batch.release.refused" in db.session.scalars(select(AuditEntry.action))
    auth.logout()
    client.post("/login", data={"email": second_finance().email,
                                "password": "correct-horse-battery"})
    page = client.get(f"/payouts/{batch.id}").text
    assert f"/payouts/{batch.id}/release" in page and "hx-confirm" in page
    assert client.post(f"/payouts/{batch.id}/release").status_code == 302
    db.session.expire_all()
    assert db.session.get(PayoutBatch, batch.id).status == BatchStatus.RELEASED


@pytest.mark.parametrize("role, sees, prepares", [
    (Role.FINANCE, True, True), (Role.ADMIN, True, False), (Role.AGENT, False, False),
    (Role.LEGAL, False, False)], ids=lambda v: getattr(v, "value", str(v)))
def test_who_reaches_payouts(client, auth, users, role, sees, prepares) -> None:
    auth.login(role)
    assert (client.get("/payouts/").status_code == 200) is sees
    assert (client.get("/payouts/new").status_code == 200) is prepares
    nav = client.get("/dashboard").text
    assert ('href="/payouts/"' in nav) is sees


def test_finance_works_the_staff_pages_but_takes_no_agent_step(client, auth, users) -> None:
    case = make_case(users)
    auth.login(Role.FINANCE)
    for url in ("/dashboard", "/cases/", f"/cases/{case.id}", "/events/", "/audit/"):
        assert client.get(url).status_code == 200, url
    assert client.post(f"/cases/{case.id}/step", data={"action": "start"}).status_code in (
        302, 403, 422)
    db.session.expire_all()
    assert db.session.get(type(case), case.id).status == "new"
    assert client.get("/admin/users/").status_code == 403


def test_finance_accounts_from_the_shell_and_the_admin_page(app, client, auth, users) -> None:
    result = app.test_cli_runner().invoke(args=["users", "create", "cashier@example.com",
                                                "--role", "finance", "--password",
                                                "correct-horse-battery"])
    assert result.exit_code == 0, result.output
    assert "(finance)" in result.output
    auth.login(Role.ADMIN)
    form = client.get("/admin/users/new?lang=zh_CN").text
    assert 'value="finance"' in form and "财务" in form
    created = client.post("/admin/users/new", data={"email": "cashier2@example.com",
                                              "name": "Cashier", "role": "finance"})
    assert created.status_code in (200, 302)
    from portal.accounts import User

    roles = dict(db.session.execute(select(User.email, User.role)).all())
    assert roles["cashier@example.com"] == roles["cashier2@example.com"] == "finance"


def test_a_programme_batch_takes_only_what_the_programme_lets_be_paid(app, users) -> None:
    from portal.programmes.models import MemberStatus, Programme, ProgrammeMember

    event = make_event()
    programmes = {}
    for mode in ("proactive", "opt_in"):
        programmes[mode] = Programme(event_id=event.id, name_zh="补偿", name_en="Make good",
                                     kind="compensation", currency="CNY", mode=mode,
                                     calculation_date=date(2026, 12, 1), status="running")
        db.session.add(programmes[mode])
    db.session.flush()
    under = {}
    for n, mode in enumerate(("proactive", "opt_in"), start=1):
        case = approved_case(users, "25.00", event=event, ref=f"P-{n}")
        case.programme_id = programmes[mode].id
        under[mode] = ProgrammeMember(programme_id=programmes[mode].id,
                                      customer_id=case.customer_id, case_id=case.id,
                                      amount=Decimal("25.00"), currency="CNY")
        db.session.add(under[mode])
    ordinary = approved_case(users, "7.00", event=event, ref="K-1")
    db.session.flush()
    proactive = _prepare(users, programme_id=programmes["proactive"].id)
    assert [line.case_id for line in _lines(proactive)] == [under["proactive"].case_id]
    with pytest.raises(RuleViolation, match="No approved case"):
        _prepare(users, programme_id=programmes["opt_in"].id)  # nobody accepted yet
    under["opt_in"].status = MemberStatus.ACCEPTED
    db.session.flush()
    assert _prepare(users, programme_id=programmes["opt_in"].id).line_count == 1
    assert [line.case_id for line in _lines(_prepare(users))] == [ordinary.id]
    with pytest.raises(RuleViolation) as refused:
        _prepare(users, currency="USD", programme_id=programmes["opt_in"].id)
    assert refused.value.field == "currency"


def test_my_work_shows_finance_the_batches_others_prepared(client, auth, users) -> None:
    approved_case(users)
    batch = _prepare(users)  # by users[Role.FINANCE]
    db.session.commit()
    auth.login(Role.FINANCE)
    mine = client.get("/dashboard?lang=en").text
    assert "No payout batch waits for your release." in mine and 'id="my-work-count"' not in mine
    auth.logout()
    client.post("/login", data={"email": second_finance().email,
                                "password": "correct-horse-battery"})
    theirs = client.get("/dashboard?lang=zh_CN").text
    assert batch.ref in theirs and f"/payouts/{batch.id}" in theirs
    assert "等待您放行的付款批次" in theirs and 'id="my-work-count">1' in theirs


def test_the_payable_check_finds_a_programme_member_by_its_case(app, users) -> None:
    """The batch's query asks, for every approved case, whether its programme lets it be paid.
    Without table statistics (SQLite right after case generation) that must look the member
    up by its case, not walk all the programme's members for each case: 100,000 × 100,000
    rows in ``bench/programme.py``, minutes instead of a second."""
    from sqlalchemy import text

    from portal.cases.models import Case
    from portal.programmes.payable import payable_clause

    if _postgresql(app):
        pytest.skip("SQLite's planner; PostgreSQL's plan follows its statistics")
    statement = select(Case.id).where(Case.programme_id == 1, payable_clause()).compile(
        db.engine, compile_kwargs={"literal_binds": True})
    plan = [row[3] for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {statement}"))]
    member = [step for step in plan if "programme_member" in step]
    assert member == ["SEARCH programme_member USING INDEX ix_programme_member_case_id "
                      "(case_id=?)"], plan
