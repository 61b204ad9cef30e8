"""One of everything, built through the services: the demo data, then every state a page can
show (mailings started and finished with sent, failed and skipped rows, a paid and a rejected
case, a post-mortem with its PDF, an export archive, a retention run, erased customers ...).
The slow work runs through a real RQ worker against a real SMTP server."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import update

from portal import jobs
from portal.accounts import Role, User
from portal.audit import services as audit
from portal.cases import canned, claims, customer_side, triage
from portal.cases import services as cases
from portal.customers import links
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.errors import Refusal
from portal.events import services as events
from portal.events.models import Event
from portal.extensions import db, rq
from portal.lifecycle import erasure, export, retention
from portal.mailings import audience, compose, unsubscribe
from portal.mailings import services as mailings
from portal.mailings.cli import PromptlyStoppingWorker
from portal.main import cli as demo
from portal.main import demo_files
from portal.main import tasks as _periodic  # noqa: F401  (registers every reconciler)
from portal.main.demo_programmes import seed_demo_programme
from portal.models import utcnow
from portal.notices import publishing
from portal.notices import services as notices
from portal.postmortems import services as postmortems
from portal.programmes import entitlements
from portal.programmes import services as programmes
from portal.programmes.models import Entitlement, Programme
from portal.signoffs import services as signoffs
from portal.signoffs import stamp
from portal.subscriptions import services as subscriptions
from portal.subscriptions.models import Subscription
from portal.web import roll_back
from tests.case_helpers import second_agent

REFUSED = "refused@example.com"  # the SMTP server answers 550 for it
IMPORT_CSV = (b"external_ref,name,email,locale\n"
              b"IMP-1,Import One,imp1@example.com,en\n"
              b"IMP-2,Import Two,not-an-email,zh_CN\n")
ENTITLEMENTS_WITH_ERRORS = (b"external_ref,order_ref,basis_amount,currency,basis_date,plan\n"
                            b"CRM-10001,WD-1,10.00,CNY,2026-01-01,gold\n"
                            b"NO-SUCH,WD-2,-5,XYZ,2026-02-30,gold\n"
                            b"CRM-10001,WD-1,10.00,CNY,2026-01-01,gold\n")


def demo_credentials(text: str) -> dict[Role, tuple[str, str]]:
    """The (e-mail, password) per role from the text `demo seed` prints."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in {r.value for r in Role}:  # not the customer link
            role, email, password = parts
            found[Role(role)] = (email, password)
    return found


def customer_link(text: str) -> str:
    """The demo customer's personal link from the text `demo seed` prints."""
    return next(line.split(": ", 1)[1].strip() for line in text.splitlines()
                if line.strip().startswith("Customer link"))


def run_slow_work() -> None:
    """Queue every row waiting for a job and run the queues dry, until nothing new appears."""
    for _round in range(5):
        if not jobs.reconcile_all(min_age=timedelta(0)):
            return
        queues = list(rq.queues.values())
        PromptlyStoppingWorker(queues, connection=queues[0].connection,
                               job_class=queues[0].job_class).work(burst=True)
        db.session.expire_all()


def _version_input(version_id: int, attach_pdf: bool = False) -> mailings.MailingInput:
    return mailings.MailingInput(version_id, audience.Audience(), attach_pdf,
                                 compose.DEFAULT_GREETINGS["zh_CN"],
                                 compose.DEFAULT_GREETINGS["en"])


def _notices(event: Event, staff: dict[Role, User]) -> None:
    """A draft with two versions and its draft PDFs (Chinese and English), one in review, an
    emergency publication in Chinese only (its English PDF falls back, with a note) awaiting
    legal, and a withdrawn notice whose open mailing was cancelled; PDFs stamped with the
    approver's name (the admin setting)."""
    agent, legal, admin = staff[Role.AGENT], staff[Role.LEGAL], staff[Role.ADMIN]
    draft = notices.create_notice(event, audience="direct", actor=agent, content={
        "zh_CN": {"title": "草稿", "body": "第一稿"}, "en": {"title": "Draft", "body": "One"}})
    notices.save(draft, content={"zh_CN": {"title": "草稿", "body": "第二稿 **粗体**"},
                                 "en": {"title": "Draft", "body": "Two, *with* a [link](/x)"}},
                 audience="direct", planned_publish_at=None, based_on=1, actor=agent)
    notices.request_pdfs(draft.latest_version, "draft")
    stamp.set_stamp_mode(stamp.APPROVER, actor=admin)
    notices.request_signoff(notices.create_notice(
        event, audience="public", actor=agent,
        content={"en": {"title": "In review", "body": "Waiting for legal"}}), actor=agent)
    emergency = notices.create_notice(event, audience="public", actor=agent, content={
        "zh_CN": {"title": "紧急通知", "body": "请致电 400-800-1234"}})
    publishing.emergency_publish(emergency, reason="Customers are calling", actor=admin)
    withdrawn = notices.create_notice(event, audience="public", actor=agent, content={
        "zh_CN": {"title": "撤回的通知", "body": "已过时"}, "en": {"title": "Gone", "body": "Old"}})
    request = notices.request_signoff(withdrawn, actor=agent)
    signoffs.decide(request.id, "approved", "", actor=legal)
    publishing.publish(withdrawn, actor=agent)
    mailings.create_mailing(event, _version_input(withdrawn.latest_version.id), actor=agent)
    publishing.withdraw(withdrawn, reason="Superseded", hide=False, actor=admin)
    publishing.after_publication([emergency.id, withdrawn.id])
    # A draft from the outage template whose time of resolution is still to be filled in.
    notices.create_notice(event, audience="public", actor=agent, content={
        "zh_CN": {"title": "故障通知", "body": "预计于 {{ resolution_time }} 前恢复。"},
        "en": {"title": "Outage", "body": "Expected back by {{ resolution_time }}."}})
    _test_event(staff)
    db.session.commit()


def _test_event(staff: dict[Role, User]) -> None:
    """An internal drill without a public title: its published notice is public, but the
    public event filter does not name the event."""
    agent, legal = staff[Role.AGENT], staff[Role.LEGAL]
    drill = events.create_event(title="演练 / Drill (test event)", kind="incident",
                                severity="sev4", cause="system", actor=staff[Role.ADMIN])
    notice = notices.create_notice(drill, audience="public", actor=agent,
                                   publish_on_approval=True, content={
                                       "zh_CN": {"title": "演练通知", "body": "演练"}})
    request = notices.request_signoff(notice, actor=agent)
    signoffs.decide(request.id, "approved", "", actor=legal)


def _cases(event: Event, staff: dict[Role, User]) -> None:
    """The demo's small proposal approved and paid (with a note, an e-mailed reply and its
    evidence), its large one still with legal, one returned by legal and one rejected; a
    receipt on a case of the customer erased later (the erasure deletes it)."""
    agent, legal = staff[Role.AGENT], staff[Role.LEGAL]
    by_order = {c.order_ref: c for c in event_cases(event)}
    demo_files.attach_receipts(by_order["WD-20261122-044"], agent)
    small, large = by_order["WD-20261122-001"], by_order["WD-20261122-017"]
    cases.approve(small, actor=second_agent())
    cases.record_payment(small, amount=small.amount, payout_ref="PAY-0001", actor=agent)
    cases.add_note(small, "Paid by bank transfer.", actor=agent)
    cases.add_reply(small, "您的退款已支付。", actor=agent)
    customer = large.customer
    returned = cases.open_case(customer, cases.CaseInput(
        "compensation", "WD-RETURNED", "9100.00", "CNY", "service_outage", "", agent.id),
        actor=agent)
    cases.change_status(returned, "start", actor=agent)
    cases.propose(returned, actor=agent)
    signoffs.decide(returned.signoff_id, "changes_requested", "Evidence missing", actor=legal)
    old_wording = canned.create(canned.CannedInput("Old wording", "旧的措辞 {{ case_ref }}",
                                                   "Old wording {{ case_ref }}"),
                                actor=staff[Role.ADMIN])
    canned.retire(old_wording, actor=staff[Role.ADMIN])
    rejected = cases.open_case(customer, cases.CaseInput(
        "refund", "WD-REJECTED", "12.00", "USD", "other", "Duplicate claim", None), actor=agent)
    cases.change_status(rejected, "reject", comment="Already refunded", actor=agent)
    # Besides the demo's claims (one waiting in triage, one rejected): one an agent turned
    # into a customer and a case.
    made = claims.submit_public(event, claims.Claimant("周杰", "zhou.jie@example.net", "", "zh_CN"),
                                claims.ClaimInput("refund", "WD-CLAIMED-1", "", "手续费多扣。"))
    claims.confirm(made)
    triage.create_customer(made, "30.00", actor=agent)


def event_cases(event: Event) -> list:
    from portal.cases.models import Case

    return list(db.session.scalars(db.select(Case).join(Customer)
                                   .where(Customer.event_id == event.id)))


def _mailings(event: Event, version_id: int, staff: dict[Role, User]) -> None:
    """Customers who are skipped (no e-mail, unsubscribed) or refused by the server, and a
    mailing with the signed PDF attached, started, with a test message."""
    agent = staff[Role.AGENT]
    for ref, name, email in (("CRM-NOMAIL", "No Mail", ""), ("CRM-REFUSED", "Refused", REFUSED),
                             ("CRM-UNSUB", "Unsubscribed", "unsub@example.com")):
        customer = customers.create_customer(event, {"external_ref": ref, "name": name,
                                                     "email": email, "locale": "en"},
                                             actor=agent)
    unsubscribe.unsubscribe(customer, via="unsubscribe page")
    finished = mailings.create_mailing(event, _version_input(version_id, attach_pdf=True),
                                       actor=agent)
    db.session.commit()
    run_slow_work()  # the signed PDF the mailing attaches
    mailings.start(finished, actor=agent, repeat_confirmed=True)  # the demo's went first
    mailings.request_test(finished, customer_by_ref("CRM-10001"), actor=agent)
    db.session.commit()


def _customer_page(event: Event, staff: dict[Role, User]) -> None:
    """Links to the customer page in every state (the demo's live one, a revoked, an expired,
    a one-time one asked for and one spent), and a customer's message on a case."""
    wang = customer_by_ref("CRM-10001")
    revoked, _token = links.issue_personal(wang, sent_with="crawl")
    links.revoke(revoked, actor=staff[Role.AGENT])
    expired, _token = links.issue_personal(wang, sent_with="crawl")
    expired.expires_at = utcnow() - timedelta(days=1)
    links.request_one_time(wang)
    spent = links.request_one_time(wang)
    spent.token_hash, spent.used_at = links.new_token()[1], utcnow()
    small = next(c for c in event_cases(event) if c.order_ref == "WD-20261122-001")
    customer_side.add_customer_message(small, small.customer, "Where is my refund?")
    db.session.commit()


def customer_by_ref(ref: str) -> Customer:
    return db.session.scalar(db.select(Customer).where(Customer.external_ref == ref))


def _postmortem(event: Event, staff: dict[Role, User]) -> None:
    agent = staff[Role.AGENT]
    postmortem = postmortems.start(event, actor=agent)
    postmortems.update(postmortem, {
        "goals": "Restore withdrawals.", "narrative": "The CRM database failed at 09:00.",
        "result": "Restored at 18:00.", "causes": "A full disk on the database server.",
        "lessons": "Alert on disk usage.", "conclusion": "Monitoring added."},
        expected_version=postmortem.lock_version, actor=agent)
    postmortems.request_signoff(postmortem, actor=agent)
    postmortems.request_pdf(postmortem, actor=agent)


def _payouts(event: Event, staff: dict[Role, User]) -> None:
    """Payout batches: one released with its CSV and pain.001 asked for (made by the slow
    work), one prepared awaiting release, one cancelled."""
    from decimal import Decimal

    from portal.customers import payout
    from portal.payouts import files
    from portal.payouts import services as payouts

    agent, admin = staff[Role.AGENT], staff[Role.ADMIN]
    finance = db.session.scalar(db.select(User).where(User.role == Role.FINANCE)
                                .order_by(User.id))

    def approved(ref: str, amount: str, bank: bool) -> None:
        customer = customers.create_customer(event, {"external_ref": ref, "name": "钱多多",
                                                     "locale": "zh_CN"}, actor=agent)
        case = cases.open_case(customer, cases.CaseInput(
            "refund", f"WD-{ref}", amount, "CNY", "other", "", agent.id), actor=agent)
        cases.change_status(case, "start", actor=agent)
        cases.propose(case, actor=agent)
        cases.approve(case, actor=second_agent())
        assert case.approved_amount == Decimal(amount)
        payout.confirm(customer, {"method": "bank", "holder": "钱多多", "bank": "招商银行",
                                  "account": "6225880012345678"} if bank
                       else {"method": "original"}, None)

    approved("PAY-1", "20.00", True)
    approved("PAY-2", "15.50", True)
    released = payouts.prepare_batch(programme_id=None, currency="CNY", method="bank",
                                     actor=finance)
    payouts.release_batch(released, actor=admin)
    for format, profile in (("csv", "cn-bank"), ("pain.001", "")):
        files.request_file(released, format=format, profile=profile, actor=finance)
    approved("PAY-3", "9.00", False)
    cancelled = payouts.prepare_batch(programme_id=None, currency="CNY", method="original",
                                      actor=finance)
    payouts.cancel_batch(cancelled, actor=finance)
    payouts.prepare_batch(programme_id=None, currency="CNY", method="original", actor=finance)


def _closed_event(staff: dict[Role, User]) -> Event:
    """A shutdown walked to closed, long enough ago to be past retention, with a customer
    and an export archive."""
    admin, agent = staff[Role.ADMIN], staff[Role.AGENT]
    event = events.create_event(title="旧业务关停 / Old line shut down", kind="shutdown",
                                severity="sev3", cause="business", actor=admin)
    customers.create_customer(event, {"external_ref": "OLD-1", "name": "Old Customer",
                                      "email": "old@example.com"}, actor=agent)
    while event.status != "closed":
        events.change_status(event, events.next_statuses(event)[0], actor=admin)
    export.request_export(event, actor=admin)
    days = retention.policy().days
    db.session.execute(update(Event).where(Event.id == event.id).values(
        closed_at=utcnow() - timedelta(days=days + 1)))
    db.session.commit()
    return event


def fill(instance_credentials: str | None = None) -> dict[Role, tuple[str, str]]:
    """Fill an empty database; returns the demo accounts' (e-mail, password) per role."""
    credentials = demo_credentials(instance_credentials or demo.seed_demo())
    staff = {role: db.session.scalar(db.select(User).where(User.email == email))
             for role, (email, _password) in credentials.items()}
    event = db.session.scalar(db.select(Event).order_by(Event.id))
    [started_draft] = [m for m in mailings.mailings_of(event.id)  # the demo's draft
                       if m.status == "draft"]
    _notices(event, staff)
    _cases(event, staff)
    _mailings(event, started_draft.version_id, staff)
    _customer_page(event, staff)
    _postmortem(event, staff)
    _payouts(event, staff)
    _subscriptions(event)
    closed = _closed_event(staff)
    batch = customers.start_import(event, io.BytesIO(IMPORT_CSV), "customers.csv",
                                   actor=staff[Role.AGENT])
    audit.request_verification(staff[Role.ADMIN])
    db.session.commit()
    run_slow_work()  # PDFs, the archive, the import check, the reply, mail, the verification
    customers.confirm_import(batch, actor=staff[Role.AGENT])
    retention.confirm_run(retention.dry_run(actor=staff[Role.ADMIN]), actor=staff[Role.ADMIN])
    erasure.erase_on_request(customer_by_ref("CRM-10002"), "Asked to be forgotten",
                             actor=staff[Role.ADMIN])
    run_slow_work()  # the import, the retention run (which purges the archive)
    export.request_export(closed, actor=staff[Role.ADMIN])  # an archive after erasure
    # Checked and awaiting confirmation (the erasure above removed the first one's files).
    customers.start_import(event, io.BytesIO(IMPORT_CSV), "again.csv", actor=staff[Role.AGENT])
    # Entitlements: the demo's file is applied; this one is checked, with row errors.
    entitlements.start_import(event, io.BytesIO(ENTITLEMENTS_WITH_ERRORS), "bad.csv",
                              actor=staff[Role.AGENT])
    run_slow_work()
    retention.dry_run(actor=staff[Role.ADMIN])  # a second report, awaiting confirmation
    # Started last, so its recipients stay waiting: the demo's draft mailing, which sends the
    # version again to the customers the demo's first mailing reached (confirmed); and a
    # draft of it once more, whose page asks for that confirmation.
    mailings.start(started_draft, actor=staff[Role.AGENT], repeat_confirmed=True)
    mailings.create_mailing(event, _version_input(started_draft.version_id),
                            actor=staff[Role.AGENT])
    db.session.commit()
    _programmes(event, staff)
    _refused_payment(event, staff)
    _payout_results(event, staff)
    return credentials


def _subscriptions(event: Event) -> None:
    """Besides the demo's confirmed subscriber: one waiting for confirmation (of all
    notices, in Chinese) and one ended by one click."""
    subscriptions.subscribe("pending.reader@example.net", None, "zh_CN")
    subscriptions.subscribe("ended.reader@example.net", event.id, "en")
    ended = db.session.scalar(db.select(Subscription).where(
        Subscription.email == "ended.reader@example.net"))
    subscriptions.confirm(ended)
    subscriptions.unsubscribe(ended, via="one-click")


def _programmes(event: Event, staff: dict[Role, User]) -> None:
    """Entitlements for a few of the event's customers; the demo's draft programme sent to
    legal (awaiting sign-off) and a second one approved."""
    people = db.session.scalars(db.select(Customer).where(
        Customer.event_id == event.id, Customer.erased_at.is_(None))
        .order_by(Customer.id).limit(3)).all()
    for number, person in enumerate(people, start=1):
        db.session.add(Entitlement(event_id=event.id, customer_id=person.id,
                                   order_ref=f"CRAWL-PRG-{number}",
                                   basis_amount=Decimal(120 * number), currency="CNY",
                                   basis_date=date(2026, 1, 1), attributes={"channel": "app"}))
    db.session.flush()
    draft = db.session.scalar(db.select(Programme).where(Programme.event_id == event.id))
    programmes.request_signoff(draft, actor=staff[Role.AGENT])
    approved = seed_demo_programme(event, staff)
    request = programmes.request_signoff(approved, actor=staff[Role.AGENT])
    signoffs.decide(request.id, "approved", "", actor=staff[Role.LEGAL])


def _payout_results(event: Event, staff: dict[Role, User]) -> None:
    """A programme with a released payout batch, a bank result applied to it (one paid, one
    rejected line, one unknown) and a result refused whole."""
    from datetime import date
    from decimal import Decimal

    from portal.cases.models import CaseStatus
    from portal.payouts import results
    from portal.payouts.models import PayoutBatch, PayoutLine
    from portal.programmes.models import Programme, ProgrammeMember

    programme = Programme(event_id=event.id, name_zh="补偿方案", name_en="Compensation",
                          kind="compensation", currency="CNY", calculation_date=date(2026, 1, 1),
                          rules={}, status="running")
    db.session.add(programme)
    db.session.flush()
    paid_cases = []
    for n, amount in enumerate(("30.00", "45.50")):
        customer = customers.create_customer(event, {"external_ref": f"PAYOUT-{n}",
                                                     "name": f"Payout {n}"},
                                             actor=staff[Role.AGENT])
        case = cases.open_case(customer, cases.CaseInput(
            "compensation", f"PO-{n}", amount, "CNY", "other", "", None),
            actor=staff[Role.AGENT])
        case.status, case.approved_amount = CaseStatus.APPROVED, Decimal(amount)
        case.programme_id = programme.id
        db.session.add(ProgrammeMember(programme_id=programme.id, customer_id=customer.id,
                                       case_id=case.id, amount=Decimal(amount), currency="CNY"))
        paid_cases.append(case)
    batch = PayoutBatch(ref="PB-CRAWL-1", programme_id=programme.id, currency="CNY",
                        method="bank", status="released", line_count=2,
                        control_sum=Decimal("75.50"), prepared_by_id=staff[Role.FINANCE].id,
                        released_by_id=staff[Role.ADMIN].id)
    db.session.add(batch)
    db.session.flush()
    for n, case in enumerate(paid_cases):
        db.session.add(PayoutLine(batch_id=batch.id, case_id=case.id,
                                  end_to_end_id=f"PB-CRAWL-1-{n}", amount=case.approved_amount,
                                  currency="CNY"))
    db.session.flush()
    applied = results.start_result(batch, io.BytesIO(
        b"end_to_end_id,status,amount,currency,bank_ref,reason\n"
        b"PB-CRAWL-1-0,paid,30.00,CNY,BK-1,\n"
        b"PB-CRAWL-1-1,rejected,45.50,CNY,BK-2,AC04\n"
        b"PB-CRAWL-1-9,paid,1.00,CNY,BK-9,\n"), "result.csv", actor=staff[Role.FINANCE])
    refused = results.start_result(batch, io.BytesIO(b"<Document><Other/></Document>"),
                                   "other.xml", actor=staff[Role.FINANCE])
    db.session.commit()
    for row in (applied, refused):
        results.apply_result(row.id)
    db.session.commit()


def _refused_payment(event: Event, staff: dict[Role, User]) -> None:
    """A second payment of the paid case, refused and kept in the audit trail (the demo
    already holds a refused duplicate case)."""
    paid = next(c for c in event_cases(event) if c.status == "paid")
    try:
        cases.record_payment(paid, amount=paid.amount, payout_ref="PAY-AGAIN",
                             actor=staff[Role.AGENT])
    except Refusal as refusal:
        roll_back(refusal)
