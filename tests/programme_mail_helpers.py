"""Builders for the tests of a programme's mailings and opt-in: a running programme with its
members and their approved cases, written directly with the models (case generation is tested
on its own)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from portal.accounts import Role, User
from portal.cases.models import Case, CaseStatus
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.events.models import Event
from portal.extensions import db
from portal.mailings import services as mailings
from portal.mailings import tasks
from portal.mailings.audience import Audience
from portal.models import utcnow
from portal.programmes import mailing as programme_mailing
from portal.programmes.models import (
    MemberStatus,
    Programme,
    ProgrammeMember,
    ProgrammeStatus,
)

TERMS_ZH = "接受本方案即表示您同意以该金额了结本次事件的全部索赔。"
TERMS_EN = "By accepting you settle every claim about this incident for this amount."


def make_programme(event: Event, *, mode: str = "opt_in", deadline: datetime | None = None,
                   threshold: str | None = None) -> Programme:
    programme = Programme(
        event_id=event.id, name_zh="停服补偿方案", name_en="Outage compensation",
        kind="compensation", currency="CNY", mode=mode,
        deadline=deadline if deadline is not None or mode != "opt_in"
        else utcnow() + timedelta(days=30),
        calculation_date=date(2026, 12, 1), rules={},
        low_value_threshold=Decimal(threshold) if threshold else None,
        terms_zh=TERMS_ZH, terms_en=TERMS_EN, status=ProgrammeStatus.RUNNING)
    db.session.add(programme)
    db.session.flush()
    return programme


def add_member(users: dict[Role, User], programme: Programme, ref: str, amount: str, *,
               locale: str = "zh_CN", email: str | None = None, name: str = "王芳"
               ) -> ProgrammeMember:
    """A customer of the programme's event with an approved case under the programme."""
    customer = customers.create_customer(programme.event, {
        "external_ref": ref, "name": name, "locale": locale,
        "email": f"{ref.lower()}@example.com" if email is None else email},
        actor=users[Role.AGENT])
    case = Case(ref=f"C-P{programme.id}-{ref}", event_id=programme.event_id,
                customer_id=customer.id, kind="compensation", order_ref=f"O-{ref}",
                amount=Decimal(amount), currency="CNY", reason="service_outage",
                status=CaseStatus.APPROVED, approved_amount=Decimal(amount),
                due_at=utcnow() + timedelta(days=10), source="programme",
                programme_id=programme.id)
    db.session.add(case)
    db.session.flush()
    member = ProgrammeMember(programme_id=programme.id, customer_id=customer.id,
                             case_id=case.id, amount=Decimal(amount), currency="CNY",
                             status=MemberStatus.CREATED)
    db.session.add(member)
    db.session.flush()
    return member


def customer_of(member: ProgrammeMember) -> Customer:
    return db.session.get(Customer, member.customer_id)


def start_programme_mailing(users: dict[Role, User], programme: Programme, notice,
                            which: str = programme_mailing.LAUNCH):
    """Draft (as staff would on the programme's page) and start a mailing; queue its chunks."""
    mailing = programme_mailing.draft_mailing(programme, which, mailings.MailingInput(
        version_id=notice.latest_version.id, audience=Audience(), attach_pdf=False,
        greeting_zh=programme_mailing.DEFAULT_GREETINGS["zh_CN"],
        greeting_en=programme_mailing.DEFAULT_GREETINGS["en"]), actor=users[Role.AGENT])
    chunks = mailings.start(mailing, actor=users[Role.AGENT], repeat_confirmed=True)
    db.session.commit()
    assert tasks.queue_chunks(mailing.id, chunks)
    return mailing
