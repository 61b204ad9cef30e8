"""Creating a signed-off programme's cases (a real worker), adjusting and paying them, the
unclaimed members and the progress figures, on the pages in both languages."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal import jobs
from portal.accounts import Role
from portal.audit import services as audit
from portal.cases import services as cases
from portal.cases.models import Case, CaseStatus
from portal.customers.models import Customer
from portal.errors import RuleViolation
from portal.extensions import db
from portal.models import utcnow
from portal.programmes import generation, progress, tasks, unclaimed
from portal.programmes.models import (
    Entitlement,
    MemberStatus,
    Programme,
    ProgrammeMember,
    ProgrammeStatus,
)
from tests.notice_helpers import make_event

# Basis amounts: 10 % each; 30.00 → 3.00 is below the threshold of 5.00 and written off.
BASES = ["100.00", "250.00", "30.00", "1000.00", "80.50"]


def make_programme(bases=BASES, *, currency: str = "CNY", emails: bool = True,
                   write_off: bool = True, event=None, no_email_at: tuple[int, ...] = (),
                   ) -> Programme:
    """An event with one customer (and one entitlement) per basis, and a signed-off
    programme paying 10 % of the basis: approved, its digests those of the rules module."""
    event = event or make_event()
    for number, basis in enumerate(bases):
        customer = Customer(event_id=event.id, external_ref=f"{currency}-{number}",
                            name=f"客户 {number}", locale="zh_CN",
                            email="" if (not emails or number in no_email_at)
                            else f"k{number}-{currency.lower()}@example.com")
        db.session.add(customer)
        db.session.flush()
        db.session.add(Entitlement(event_id=event.id, customer_id=customer.id,
                                   order_ref=f"O-{number}", basis_amount=Decimal(basis),
                                   currency=currency, basis_date=date(2026, 1, 1)))
    programme = Programme(
        event_id=event.id, name_zh="退款方案", name_en="Refund programme", kind="refund",
        currency=currency, calculation_date=date(2026, 6, 30),
        rules={"amount": {"method": "percentage", "percentage": "10"}, "eligibility": {}},
        low_value_threshold=Decimal("5.00"),
        low_value_action="write_off" if write_off else "pay",
        terms_zh="条款", terms_en="Terms", status=ProgrammeStatus.DRAFT)
    db.session.add(programme)
    db.session.flush()
    sign_off(programme)
    db.session.commit()
    return programme


def sign_off(programme: Programme) -> None:
    """Legal's one sign-off, through the real services: the programme ends approved."""
    from portal.accounts import User
    from portal.programmes import services as programmes
    from portal.signoffs import services as signoffs

    agent, legal = (db.session.scalar(select(User).where(User.role == role))
                    for role in (Role.AGENT, Role.LEGAL))
    request = programmes.request_signoff(programme, actor=agent)
    signoffs.decide(request.id, "approved", "", actor=legal)
    assert programme.status == ProgrammeStatus.APPROVED


def members(programme: Programme) -> list[ProgrammeMember]:
    return list(db.session.scalars(select(ProgrammeMember).where(
        ProgrammeMember.programme_id == programme.id).order_by(ProgrammeMember.customer_id)))


def generate(programme: Programme, users, run_worker) -> None:
    generation.start_generation(programme, users[Role.ADMIN])
    db.session.commit()
    assert tasks.queue_generation(programme.id)
    run_worker()
    db.session.refresh(programme)


def test_generation_creates_a_member_and_an_approved_case_per_eligible_customer(
        app, users, run_worker) -> None:
    programme = make_programme()
    generate(programme, users, run_worker)

    assert programme.status == ProgrammeStatus.RUNNING
    assert programme.finished_at is not None and programme.error is None
    assert (programme.generated_count, programme.eligible_count) == (5, 5)
    assert generation.progress_percent(programme) == 100
    found = members(programme)
    assert [m.status for m in found] == ["created", "created", "written_off", "created",
                                         "created"]
    assert [m.amount for m in found] == [Decimal("10.00"), Decimal("25.00"), Decimal("3.00"),
                                         Decimal("100.00"), Decimal("8.05")]
    written_off = found[2]
    assert written_off.case_id is None
    created = [m for m in found if m.case_id]
    for member in created:
        case = db.session.get(Case, member.case_id)
        assert case.customer_id == member.customer_id
        assert case.status == CaseStatus.APPROVED
        assert case.amount == case.approved_amount == member.amount
        assert case.programme_id == programme.id and case.source == "programme"
        assert case.order_ref == f"PRG-{programme.id}" and case.kind == "refund"
        assert case.ref.startswith("C-")
    assert len({db.session.get(Case, m.case_id).ref for m in created}) == 4
    entries = audit.history("programme", programme.id)
    assert [e.action for e in entries][:3] == ["programme.generated", "programme.cases_created",
                                               "programme.generate"]
    chunk = entries[1]
    assert "4 cases created, 1 written off" in chunk.summary
    assert sorted(c[0] for c in chunk.after["cases"]) == sorted(m.case_id for m in created)
    assert {c[3] for c in chunk.after["cases"]} == {"10.00", "25.00", "100.00", "8.05"}


def test_a_second_run_creates_nothing_twice(app, users, run_worker) -> None:
    programme = make_programme()
    generate(programme, users, run_worker)
    cases_before = db.session.scalar(select(func.count(Case.id)))
    # Whatever queues it again (a second click, the reconciler): it is running, nothing to do.
    with pytest.raises(RuleViolation):
        generation.start_generation(programme, users[Role.ADMIN])
    assert tasks.queue_generation(programme.id)
    run_worker()
    # Even forced back to generating, a run finds every member there and adds none.
    programme.status = ProgrammeStatus.GENERATING
    db.session.commit()
    assert tasks.queue_generation(programme.id)
    run_worker()
    db.session.refresh(programme)
    assert programme.status == ProgrammeStatus.RUNNING
    assert db.session.scalar(select(func.count(Case.id))) == cases_before == 4
    assert len(members(programme)) == 5


class Killed(BaseException):
    """The worker dies: nothing after this point runs, no handler catches it."""


def test_a_killed_job_resumes_where_it_stopped(app, users, run_worker) -> None:
    programme = make_programme(["100.00"] * 7)
    generation.start_generation(programme, users[Role.ADMIN])
    db.session.commit()
    commits = []

    def checkpoint_then_die() -> None:
        db.session.commit()
        commits.append(1)
        if len(commits) == 3:  # the counts, then two chunks of two
            raise Killed

    assert jobs.take(tasks.GENERATE_CLAIM, programme.id)
    with pytest.raises(Killed):
        generation.run_generation(programme.id, checkpoint=checkpoint_then_die, chunk_size=2)
    db.session.rollback()
    db.session.refresh(programme)
    assert programme.status == ProgrammeStatus.GENERATING
    assert (programme.generated_count, programme.eligible_count) == (4, 7)
    assert generation.progress_percent(programme) == 57
    assert len(members(programme)) == 4
    # The dead worker's lease runs out; the reconciler's job takes over and finishes.
    programme.claimed_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    assert tasks.queue_generation(programme.id)
    run_worker()
    db.session.refresh(programme)
    assert programme.status == ProgrammeStatus.RUNNING
    assert programme.generated_count == 7
    assert len(members(programme)) == 7
    assert db.session.scalar(select(func.count(Case.id))) == 7
    assert len(set(db.session.scalars(select(Case.ref)))) == 7


def test_a_broken_binding_stops_with_the_reason_and_creates_nothing(
        app, users, run_worker) -> None:
    programme = make_programme()
    entitlement = db.session.scalar(select(Entitlement).limit(1))
    entitlement.basis_amount = Decimal("999.00")  # after the sign-off
    db.session.commit()
    generate(programme, users, run_worker)

    assert programme.status == ProgrammeStatus.APPROVED
    reason = generation.error_message(programme)
    assert reason is not None and "legal signed off" in reason.in_english()
    assert members(programme) == []
    assert db.session.scalar(select(func.count(Case.id))) == 0
    stopped = audit.history("programme", programme.id)[0]
    assert stopped.action == "programme.generate.stopped"
    assert "no longer the ones legal signed off" in stopped.summary


def test_a_job_that_keeps_dying_stops_with_its_reason(app, client, auth, users,
                                                      run_worker) -> None:
    programme = make_programme()
    generation.start_generation(programme, users[Role.ADMIN])
    programme.attempts = tasks.GENERATE_CLAIM.max_attempts
    db.session.commit()
    assert tasks.queue_generation(programme.id)
    run_worker()
    db.session.refresh(programme)
    assert programme.status == ProgrammeStatus.APPROVED
    assert "Gave up after 3 attempts" in generation.error_message(programme).in_english()
    assert members(programme) == []
    auth.login(Role.ADMIN)
    page = client.get(f"/programmes/{programme.id}/run?lang=zh_CN")
    assert "尝试 3 次后放弃" in page.text and "继续创建案件" not in page.text


def test_customers_without_an_address_get_their_case_and_are_unclaimed(
        app, users, run_worker) -> None:
    programme = make_programme(no_email_at=(1,))
    generate(programme, users, run_worker)
    member = members(programme)[1]
    assert member.status == MemberStatus.UNCLAIMED
    assert member.unclaimed_reason == "no_address" and member.case_id is not None
    report = unclaimed.unclaimed_report(programme)
    assert report.count == 1 and report.held == {"CNY": Decimal("25.00")}


def test_an_adjusted_case_leaves_the_programme(app, users, run_worker) -> None:
    programme = make_programme()
    generate(programme, users, run_worker)
    member = members(programme)[0]
    case = db.session.get(Case, member.case_id)
    changed = cases.update_case(case, cases.CaseInput(
        case.kind, case.order_ref, "12.00", case.currency, case.reason, "", None),
        expected_version=case.lock_version, actor=users[Role.AGENT])
    db.session.commit()
    assert changed
    db.session.refresh(member)
    assert member.status == MemberStatus.LEFT
    assert case.programme_id is None and case.status == CaseStatus.IN_PROGRESS
    assert "programme.member.left" in [e.action for e in audit.history("case", case.id)]


def test_a_paid_case_pays_its_member(app, users, run_worker) -> None:
    programme = make_programme()
    generate(programme, users, run_worker)
    member = members(programme)[0]
    case = db.session.get(Case, member.case_id)
    cases.record_payment(case, amount=case.approved_amount, payout_ref="PAY-0001",
                         actor=users[Role.FINANCE], through_batch=True)
    db.session.commit()
    db.session.refresh(member)
    assert member.status == MemberStatus.PAID
    # A paid member is never marked unclaimed.
    assert unclaimed.mark_unclaimed([member.id], "bounced", users[Role.ADMIN]) == 0
    db.session.refresh(member)
    assert member.status == MemberStatus.PAID


def test_failed_payouts_count_and_the_second_makes_the_member_unclaimed(
        app, users, run_worker) -> None:
    programme = make_programme()
    generate(programme, users, run_worker)
    member = members(programme)[3]
    assert unclaimed.record_failed_payout(member.case_id) is False
    db.session.refresh(member)
    assert (member.failed_payouts, member.status) == (1, MemberStatus.CREATED)
    assert unclaimed.record_failed_payout(member.case_id) is True
    db.session.refresh(member)
    assert (member.failed_payouts, member.status) == (2, MemberStatus.UNCLAIMED)
    assert member.unclaimed_reason == "payout_failed"
    with pytest.raises(RuleViolation):
        unclaimed.mark_unclaimed([member.id], "lost_interest", None)


def test_unclaimed_members_are_reported_with_the_amount_held_and_as_csv(
        app, client, auth, users, run_worker) -> None:
    programme = make_programme(no_email_at=(0,))
    generate(programme, users, run_worker)
    found = members(programme)
    # The written-off member (no case) is never unclaimed; the no-address one already is.
    assert unclaimed.mark_unclaimed([found[1].id, found[2].id, found[0].id], "bounced",
                                    users[Role.ADMIN]) == 1
    db.session.commit()
    report = unclaimed.unclaimed_report(programme)
    lines = {line.reason: line for line in report.lines}
    assert (lines["no_address"].count, lines["no_address"].held) == (1, {"CNY":
                                                                         Decimal("10.00")})
    assert (lines["bounced"].count, lines["bounced"].held) == (1, {"CNY": Decimal("25.00")})
    assert lines["not_accepted"].count == 0
    assert report.count == 2 and report.held == {"CNY": Decimal("35.00")}
    entry = audit.history("programme", programme.id)[0]
    assert entry.action == "programme.unclaimed" and "25.00 CNY held" in entry.summary

    auth.login(Role.AGENT)
    page = client.get(f"/programmes/{programme.id}/unclaimed?lang=en")
    assert page.status_code == 200
    assert 'data-held="CNY">35.00 CNY' in page.text and "the mail bounced" in page.text
    page = client.get(f"/programmes/{programme.id}/unclaimed?lang=zh_CN")
    assert page.status_code == 200 and "邮件被退信" in page.text and "保留金额" in page.text
    answer = client.get(f"/programmes/{programme.id}/unclaimed.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "customer_ref / 客户编号" and rows[0][6] == "reason / 原因"
    assert sorted((r[0], r[4], r[6]) for r in rows[1:]) == [
        ("CNY-0", "10.00", "no_address"), ("CNY-1", "25.00", "bounced")]


def test_progress_counts_and_amounts_per_stage_and_currency(app, users, run_worker) -> None:
    programme = make_programme()
    generate(programme, users, run_worker)
    dollars = make_programme(["40.00", "60.00"], currency="USD", write_off=False)
    generate(dollars, users, run_worker)
    found = members(programme)
    found[0].notified_at = found[1].notified_at = utcnow()
    found[1].accepted_at = utcnow()
    db.session.commit()
    cases.record_payment(db.session.get(Case, found[1].case_id), amount="25.00",
                         payout_ref="PAY-0002", actor=users[Role.FINANCE], through_batch=True)
    unclaimed.record_failed_payout(found[3].case_id)
    db.session.commit()

    (cny,) = progress.programme_progress(programme)
    shown = {b.stage: (b.count, b.amount) for b in cny.bars}
    assert cny.currency == "CNY"
    assert shown["eligible"] == (4, Decimal("143.05"))
    assert shown["notified"] == (2, Decimal("35.00"))
    assert shown["accepted"] == (1, Decimal("25.00"))
    assert shown["paid"] == (1, Decimal("25.00"))
    assert shown["failed"] == (1, Decimal("100.00"))
    assert shown["unclaimed"] == (0, Decimal(0))
    assert shown["written_off"] == (1, Decimal("3.00"))
    assert cny.bar("paid").percent == 25
    (usd,) = progress.programme_progress(dollars)
    assert usd.currency == "USD"
    assert {b.stage: b.count for b in usd.bars}["eligible"] == 2
    assert usd.bar("eligible").amount == Decimal("10.00")


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_the_pages_read_in_both_languages(app, client, auth, users, run_worker, lang) -> None:
    from tests.test_page_language import foreign_words, visible_texts

    programme = make_programme()
    auth.login(Role.ADMIN)
    page = client.get(f"/programmes/{programme.id}/run?lang={lang}")
    assert page.status_code == 200
    assert f'action="/programmes/{programme.id}/run/start"' in page.text
    answer = client.post(f"/programmes/{programme.id}/run/start?lang={lang}")
    assert answer.status_code == 302
    db.session.expire_all()
    assert db.session.get(Programme, programme.id).status == ProgrammeStatus.GENERATING
    partial = client.get(f"/programmes/{programme.id}/run?lang={lang}",
                         headers={"HX-Request": "true", "HX-Target": "programme-progress"})
    assert 'hx-trigger="every 1s"' in partial.text and "<html" not in partial.text
    run_worker()
    pages = {
        "run": client.get(f"/programmes/{programme.id}/run?lang={lang}"),
        "members": client.get(f"/programmes/{programme.id}/members?status=eligible&lang={lang}"),
        "all": client.get(f"/programmes/{programme.id}/members?lang={lang}"),
        "unclaimed": client.get(f"/programmes/{programme.id}/unclaimed?lang={lang}"),
    }
    for name, answer in pages.items():
        assert answer.status_code == 200, name
        texts = visible_texts(answer.get_data(as_text=True), lang[:2])
        assert [w for t in texts for w in foreign_words(lang[:2], t)] == [], name
    run = pages["run"].text
    assert 'value="100"' in run and "every 1s" not in run
    assert f"/programmes/{programme.id}/members?status=paid" in run
    assert 'data-count="4" data-amount="143.05"' in run
    assert 'data-count="0" data-amount="0.00"' in run  # nobody paid yet: an amount still
    members_page = pages["members"].text
    assert members_page.count("/cases/") >= 4 and "CNY-3" in members_page
    assert "CNY-2" not in members_page  # written off: not behind the eligible bar
    assert "CNY-2" in pages["all"].text
    assert client.get(f"/programmes/{programme.id}/members?status=nonsense").status_code == 404
    # The case page says where the case came from, although its own history is empty.
    member = members(programme)[0]
    case_page = client.get(f"/cases/{member.case_id}?lang={lang}")
    assert case_page.status_code == 200
    assert f'href="/programmes/{programme.id}/run"' in case_page.text
    assert 'id="programme-origin"' in case_page.text
    texts = visible_texts(case_page.get_data(as_text=True), lang[:2])
    assert [w for t in texts for w in foreign_words(lang[:2], t)] == []


def test_only_an_admin_starts_the_generation(app, client, auth, users) -> None:
    programme = make_programme()
    auth.login(Role.AGENT)
    page = client.get(f"/programmes/{programme.id}/run")
    assert page.status_code == 200 and "/run/start" not in page.text
    assert client.post(f"/programmes/{programme.id}/run/start").status_code == 403
    db.session.expire_all()
    assert db.session.get(Programme, programme.id).status == ProgrammeStatus.APPROVED



def test_the_command_centre_links_to_the_programme_progress(app, client, auth, users) -> None:
    programme = make_programme()
    auth.login(Role.AGENT)
    page = client.get(f"/events/{programme.event_id}?lang=en")
    assert page.status_code == 200
    assert f'href="/programmes/{programme.id}/run"' in page.text
    assert "Refund programme" in page.text


def test_a_customer_whose_open_case_uses_the_programme_reference_is_left_out(
        app, users, run_worker) -> None:
    programme = make_programme()
    customer = db.session.scalar(select(Customer).where(Customer.external_ref == "CNY-0"))
    typed = cases.open_case(customer, cases.CaseInput(
        "refund", f" prg-{programme.id} ", "5.00", "CNY", "other", "", None),
        actor=users[Role.AGENT])
    db.session.commit()
    generate(programme, users, run_worker)
    assert programme.status == ProgrammeStatus.RUNNING
    assert generation.progress_percent(programme) == 100
    assert [m.customer_id for m in members(programme)].count(customer.id) == 0
    assert len(members(programme)) == 4
    assert db.session.get(Case, typed.id).programme_id is None
    chunk = audit.history("programme", programme.id)[1]
    assert chunk.after["counts"]["skipped"] == 1
