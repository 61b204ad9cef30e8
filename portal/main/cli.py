"""Development commands: demo data, the all-in-one dev server, the reconciler."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from portal import jobs, uow
from portal.accounts import Role, User
from portal.audit import checkpoints as audit_checkpoints
from portal.auth import services as auth_services
from portal.cases import customer_side
from portal.cases import services as case_services
from portal.cases.models import Case
from portal.customers import links as customer_links
from portal.customers import services as customer_services
from portal.customers.models import Customer
from portal.events import services as event_services
from portal.events.models import Event
from portal.extensions import db
from portal.main import (
    demo_comms,
    demo_entitlements,
    demo_files,
    demo_letters,
    demo_offers,
    demo_programmes,
    demo_subscriptions,
)
from portal.main.supervisor import Supervisor
from portal.notices import content
from portal.notices import services as notice_services
from portal.notices import settings as notice_settings
from portal.notices.models import Notice
from portal.signoffs import services as signoff_services
from portal.signoffs.models import SignoffRequest, SignoffStatus

demo_cli = AppGroup("demo", help="Demo data for trying the portal.")

DEMO_USERS = [
    ("admin@aftercare.example", "Ada Admin 管理员", Role.ADMIN),
    ("agent@aftercare.example", "Alex Agent 客服", Role.AGENT),
    ("legal@aftercare.example", "Lee Legal 法务", Role.LEGAL),
    # Two in finance: the one who prepares a payout batch may not release it.
    ("finance@aftercare.example", "Fay Finance 财务", Role.FINANCE),
    ("finance2@aftercare.example", "Fred Finance 财务复核", Role.FINANCE),
]


def _credentials_file() -> Path:
    return Path(current_app.instance_path) / "demo-credentials.txt"


def seed_demo() -> str:
    """Create one user per role and a sample event on an empty database; return the
    credentials text (kept under instance/, mode 0600, so later runs can print it again)."""
    path = _credentials_file()
    if db.session.scalar(select(func.count(User.id))):
        return path.read_text() if path.exists() else ""
    lines = []
    users = {}
    for email, name, role in DEMO_USERS:
        user, password = auth_services.create_user(email, name, role, must_change_password=False)
        users[role] = user
        lines.append(f"  {role.value:<7} {email:<26} {password}")
    event = event_services.create_event(
        title="CRM 系统故障 / CRM outage",
        kind="incident", severity="sev1", cause="system",
        summary="CRM 系统不可用，客户无法在线提交出金申请。请致电 400-800-1234。\n"
                "The CRM is down; customers with withdrawal requests, call 400-800-1234.",
        actor=users[Role.ADMIN],
        titles={"title_zh": "CRM 系统故障", "title_en": "CRM outage",
                "public_title_zh": "在线服务中断", "public_title_en": "Online service disruption"},
        accepts_claims=True,
    )
    notice_settings.save_contact(phone="400-800-1234", email="care@example.com",
                                 actor=users[Role.ADMIN])
    notice = _seed_published_notice(event, users)
    subscriber_line = demo_subscriptions.seed_subscriber(event)
    small_case = _seed_customers_and_cases(event, users)
    _seed_mailing(event, users)
    _seed_my_work(event, users)
    _seed_claims(event, users)
    demo_entitlements.seed_entitlements(event, users[Role.AGENT])
    _seed_notice_update(notice, users)
    _seed_command_centre(event, users)
    demo_comms.seed_comms(event, users)
    demo_programmes.seed_demo_programme(event, users)
    offer_event = demo_offers.seed_offers(users)
    # The audit page shows a signed checkpoint of the chain from the start.
    audit_checkpoints.write_checkpoint()
    uow.commit()  # the command's unit of work; then the demo notice's PDFs are queued
    _seed_refused_attempt(small_case, users)
    demo_letters.seed_letters(event, users)  # rendered now: one finished letter run
    lines.append(_seed_customer_link(event))
    lines.append(_offer_customer_link(offer_event))
    lines.append(subscriber_line)
    uow.commit()  # the demo customer's link
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return text


def _seed_customer_link(event: Event) -> str:
    """A personal link for the demo customer 王芳 (CRM-10001) and a message of hers on her
    paid case, so the customer page and the staff conversation show both sides; returns the
    line printed with the demo accounts."""
    wang = db.session.scalar(select(Customer).where(Customer.event_id == event.id,
                                                    Customer.external_ref == "CRM-10001"))
    cases = customer_side.cases_of(wang)
    case = next((c for c in cases if c.payment is not None), cases[0])
    customer_side.add_customer_message(case, wang, "请问赔偿款什么时候到账？谢谢。")
    _link, token = customer_links.issue_personal(wang, sent_with="demo")
    return f"  Customer link (王芳, CRM-10001): {customer_links.link_url(token)}"


def _offer_customer_link(event: Event) -> str:
    """A personal link for 赵敏 (MEM-20001), whose approved case waits for her to accept the
    offer; returns the line printed with the demo accounts."""
    zhao = db.session.scalar(select(Customer).where(Customer.event_id == event.id,
                                                    Customer.external_ref == "MEM-20001"))
    _link, token = customer_links.issue_personal(zhao, sent_with="demo")
    return (f"  Customer link (赵敏, MEM-20001, an offer to accept): "
            f"{customer_links.link_url(token)}")


def _outage_text(resolution: dict[str, str], event: Event) -> dict[str, dict[str, str]]:
    """The outage starter filled in as a drafter would: the event's titles and the contact
    settings by the template, the time of resolution by hand."""
    contact = notice_settings.contact_details()
    return content.starter("outage", {
        locale: {"event_title": event.title_in(locale), "resolution_time": resolution[locale],
                 **contact} for locale in resolution})


def _seed_published_notice(event: Event, users: dict[Role, User]) -> Notice:
    """The CRM outage notice in Chinese and English, planned "on approval": drafted by the
    agent and published by legal's approval; its PDF is queued (or re-queued by the reconciler
    once Redis runs)."""
    text = _outage_text({"zh_CN": "今日 18:00", "en": "18:00 today"}, event)
    notice = notice_services.create_notice(event, audience="public", content=text,
                                           actor=users[Role.AGENT], publish_on_approval=True)
    request = notice_services.request_signoff(notice, actor=users[Role.AGENT])
    signoff_services.decide(request.id, SignoffStatus.APPROVED, "", actor=users[Role.LEGAL])
    return notice


def _seed_notice_update(notice: Notice, users: dict[Role, User]) -> None:
    """An update of the published notice waiting for legal: a new time of resolution, a few
    characters apart, so the sign-off page shows the change character by character."""
    text = _outage_text({"zh_CN": "今日 20:30", "en": "20:30 today"}, notice.event)
    notice_services.save(notice, content=text, audience=notice.audience,
                         planned_publish_at=None, based_on=notice.latest_version.number,
                         actor=users[Role.AGENT])
    notice_services.request_signoff(notice, actor=users[Role.AGENT])


def _seed_customers_and_cases(event: Event, users: dict[Role, User]) -> Case:
    """A few affected customers, one small refund awaiting a second agent (with a receipt
    photo from the customer and a bank statement PDF from staff) and one large compensation
    awaiting legal sign-off; returns the small one."""
    people = [("CRM-10001", "王芳", "华夏贸易有限公司", "wang.fang@example.com", "zh_CN"),
              ("CRM-10002", "李雷", "", "li.lei@example.com", "zh_CN"),
              ("CRM-10003", "Anna Schmidt", "Schmidt GmbH", "anna@example.com", "en")]
    customers = [customer_services.create_customer(
        event, {"external_ref": ref, "name": name, "company": company, "email": email,
                "locale": locale, "tags": "withdrawal"}, actor=users[Role.AGENT])
        for ref, name, company, email, locale in people]
    small = case_services.open_case(customers[0], case_services.CaseInput(
        "refund", "WD-20261122-001", "1280.50", "CNY", "service_outage",
        "提现申请因 CRM 故障未处理，客户要求退回手续费。", users[Role.AGENT].id),
        actor=users[Role.AGENT])
    case_services.change_status(small, "start", actor=users[Role.AGENT])
    case_services.propose(small, actor=users[Role.AGENT])
    demo_files.attach_receipts(small, users[Role.AGENT])
    large = case_services.open_case(customers[2], case_services.CaseInput(
        "compensation", "WD-20261122-017", "8800.00", "CNY", "service_outage",
        "Missed a trade window during the outage.", users[Role.AGENT].id),
        actor=users[Role.AGENT])
    case_services.change_status(large, "start", actor=users[Role.AGENT])
    case_services.propose(large, actor=users[Role.AGENT])
    return small


def _seed_claims(event: Event, users: dict[Role, User]) -> None:
    """Claims from the notice: a listed customer's (a case with source "customer"), one from
    someone not on the list, confirmed and waiting in the triage queue, and one rejected
    (its reason e-mailed in English)."""
    from portal.cases import claims, triage
    from portal.customers.models import Customer

    anna = db.session.scalar(select(Customer).where(Customer.event_id == event.id,
                                                    Customer.external_ref == "CRM-10003"))
    claims.open_from_customer(anna, claims.ClaimInput(
        "refund", "WD-20261122-060", "320.00", "The withdrawal fee was charged twice."))
    waiting = claims.submit_public(event, claims.Claimant(
        "赵敏", "zhao.min@example.net", "+86 139 0000 1234", "zh_CN"), claims.ClaimInput(
        "compensation", "WD-20261122-088", "", "提现申请提交后一直未处理，我没有收到任何通知。"))
    claims.confirm(waiting)
    rejected = claims.submit_public(event, claims.Claimant(
        "Tom Baker", "tom.baker@example.org", "", "en"), claims.ClaimInput(
        "refund", "SHOP-4471", "45.00", "My shop order never arrived."))
    claims.confirm(rejected)
    triage.reject(rejected, "This order is from our online shop, which the outage did not "
                  "affect. Please contact the shop's support.", actor=users[Role.AGENT])


def _seed_command_centre(event: Event, users: dict[Role, User]) -> None:
    """The first response done, a partner to inform and an entry in the timeline."""
    from portal.events.models import EventTask

    for task in db.session.scalars(select(EventTask).where(EventTask.event_id == event.id)
                                   .order_by(EventTask.position).limit(2)):
        event_services.set_task_done(task, True, actor=users[Role.ADMIN])
    event_services.add_stakeholder(event, kind="supplier", name="CRM 云服务商 / CRM vendor",
                                   contact="NOC 400-800-9999", actor=users[Role.ADMIN])
    event_services.add_timeline_entry(event, occurred_at=None,
                                      text="供应商确认数据库故障 / Vendor confirmed a database "
                                           "fault", actor=users[Role.AGENT])


def _seed_mailing(event: Event, users: dict[Role, User]) -> None:
    """The published notice mailed to the customers with a withdrawal request (started: the
    worker sends it, or the reconciler queues it once Redis runs), and a draft of the same
    version to every affected customer, ready to preview and test, whose start asks to
    confirm sending it again to those who already have it."""
    from portal.mailings import audience as mailing_audience
    from portal.mailings import compose as mailing_compose
    from portal.mailings import services as mailing_services
    from portal.mailings import tasks as mailing_tasks

    version = notice_services.event_notices(event)[0].published_version

    def mailing(audience: mailing_audience.Audience):
        return mailing_services.create_mailing(event, mailing_services.MailingInput(
            version.id, audience, False, mailing_compose.DEFAULT_GREETINGS["zh_CN"],
            mailing_compose.DEFAULT_GREETINGS["en"]), actor=users[Role.AGENT])

    first = mailing(mailing_audience.Audience(tags=("withdrawal",)))
    chunks = mailing_services.start(first, actor=users[Role.AGENT])
    jobs.enqueue_after_commit(mailing_tasks.queue_chunks, first.id, chunks)
    mailing(mailing_audience.Audience())


def _seed_refused_attempt(existing: Case, users: dict[Role, User]) -> None:
    """A second case for the same customer and order, refused: the audit page lists it
    under "Refused attempts" (kept in a transaction of its own, after the demo's)."""
    from portal.errors import Refusal
    from portal.web import roll_back

    try:
        case_services.open_case(existing.customer, case_services.CaseInput(
            existing.kind, existing.order_ref, "100.00", "CNY", "service_outage", "",
            users[Role.AGENT].id), actor=users[Role.AGENT])
    except Refusal as refusal:
        roll_back(refusal)


CANNED_REPLIES = [
    ("退款处理中 / Refund in progress",
     "{{ name }}，您好：\n您的案件 {{ case_ref }}（{{ case_amount }}）正在处理，我们会在处理完成后"
     "通知您。",
     "Dear {{ name }},\nyour case {{ case_ref }} ({{ case_amount }}) is being processed; we "
     "will write again once it is done."),
    ("已支付 / Paid",
     "{{ name }}，您好：\n案件 {{ case_ref }} 的 {{ case_amount }} 已支付，请注意查收。",
     "Dear {{ name }},\n{{ case_amount }} for case {{ case_ref }} has been paid."),
]


def _seed_my_work(event: Event, users: dict[Role, User]) -> None:
    """What each role's home shows: the agent's cases due today and overdue, legal's queue
    with requests of several ages, canned replies, and 王芳 with a paid case, a reply, a
    notice mailed to her and her unsubscription."""
    from portal.cases import canned
    from portal.cases.models import Case
    from portal.customers.models import Customer
    from portal.mailings import audience as mailing_audience
    from portal.mailings import compose as mailing_compose
    from portal.mailings import services as mailing_services
    from portal.mailings import unsubscribe
    from portal.models import utcnow

    agent, legal, admin = users[Role.AGENT], users[Role.LEGAL], users[Role.ADMIN]
    for title, zh, en in CANNED_REPLIES:
        canned.create(canned.CannedInput(title, zh, en), actor=admin)
    customers = {c.external_ref: c for c in db.session.scalars(
        select(Customer).where(Customer.event_id == event.id))}
    wang, li = customers["CRM-10001"], customers["CRM-10002"]
    paid = case_services.open_case(wang, case_services.CaseInput(
        "compensation", "WD-20261122-031", "6000.00", "CNY", "service_outage",
        "提现延误造成的利息损失。", agent.id), actor=agent)
    case_services.change_status(paid, "start", actor=agent)
    case_services.propose(paid, actor=agent)
    signoff_services.decide(paid.signoff_id, SignoffStatus.APPROVED, "", actor=legal)
    case_services.record_payment(paid, amount=paid.amount, payout_ref="PAY-DEMO-0001",
                                 actor=agent)
    case_services.add_reply(paid, "您的赔偿已支付，请查收。", actor=agent)
    now = utcnow()
    for order_ref, amount, hours in (("WD-20261122-044", "6500.00", 50),
                                     ("WD-20261122-052", "9200.00", 5)):
        case = case_services.open_case(li, case_services.CaseInput(
            "compensation", order_ref, amount, "CNY", "service_outage", "", agent.id),
            actor=agent)
        case_services.change_status(case, "start", actor=agent)
        case_services.propose(case, actor=agent)
        case.due_at = now - timedelta(hours=3) if hours > 24 else now + timedelta(hours=2)
        db.session.get(SignoffRequest, case.signoff_id).requested_at = \
            now - timedelta(hours=hours)
    first = db.session.scalar(select(Case).where(Case.order_ref == "WD-20261122-001"))
    first.due_at = now - timedelta(days=1)
    version = notice_services.event_notices(event)[0].published_version
    mailing = mailing_services.create_mailing(event, mailing_services.MailingInput(
        version.id, mailing_audience.Audience(), False,
        mailing_compose.DEFAULT_GREETINGS["zh_CN"], mailing_compose.DEFAULT_GREETINGS["en"]),
        actor=agent)
    # Its jobs are queued by the reconciler; the withdrawal customers had it already.
    mailing_services.start(mailing, actor=agent, repeat_confirmed=True)
    unsubscribe.unsubscribe(wang, via="unsubscribe page")


class _QueueMisses(logging.Filter):
    """Counts, and keeps off the screen, the jobs that found no queue to go to."""

    LOGGERS = ("portal.jobs", "portal.public.tasks")

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("could not queue"):
            self.count += 1
            return False
        return True


@demo_cli.command("seed")
def seed() -> None:
    """Seed demo users and a sample event (only on an empty database)."""
    # `make run` seeds before it starts Redis: the seed's jobs wait in the database, and
    # `devserver` queues them when Redis is up. Said once, not as an error per job.
    misses = _QueueMisses()
    for name in misses.LOGGERS:
        logging.getLogger(name).addFilter(misses)
    try:
        text = seed_demo()
    finally:
        for name in misses.LOGGERS:
            logging.getLogger(name).removeFilter(misses)
    if misses.count:
        click.echo(f"The job queue is not running yet: {misses.count} job(s) wait in the "
                   "database and are queued when it starts (make run starts it next).")
    if text:
        click.echo("Demo accounts (role, e-mail, password):\n" + text)


@click.command("reconcile")
@with_appcontext
def reconcile() -> None:
    """Re-queue slow work whose job vanished from Redis (worker killed, Redis emptied)."""
    requeued = jobs.reconcile_all()
    uow.commit()  # the command's unit of work (the reconcilers' recoveries)
    click.echo(f"Re-queued {requeued} job(s).")


def _wait_for(path: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise click.ClickException(f"{path} did not appear; see the log above.")
        time.sleep(0.05)


def default_worker_command(flask: list[str]) -> list[str]:
    """The default queue's worker as ``make run`` starts it: with the short time to live
    that makes it beat within a minute, so ``/readyz`` counts it (RQ's default beats every
    405 s, and the development portal would report "not ready" most of the time)."""
    return [*flask, "rq", "worker", "--worker-ttl", str(jobs.WORKER_TTL), "--with-scheduler",
            "default"]


@click.command("devserver")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@with_appcontext
def devserver(host: str, port: int) -> None:
    """Run everything for development: Redis (unless REDIS_URL is set), the local SMTP server,
    an RQ worker with its scheduler, the mail worker, the cron reconciler and the web server.
    A process that stops is started again; Ctrl-C ends all."""
    instance = Path(current_app.instance_path)
    env = dict(os.environ)
    supervisor = Supervisor(env)
    try:
        if not os.environ.get("REDIS_URL"):
            redis = shutil.which("redis-server")
            if redis is None:
                raise click.ClickException("redis-server is not installed: run `make run` as "
                                           "root once or install Debian's redis-server.")
            sock = instance / "redis.sock"
            supervisor.spawn("redis", redis, "--port", "0", "--unixsocket", str(sock),
                             "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                             "--dir", str(instance),
                             before_start=lambda: sock.unlink(missing_ok=True))
            _wait_for(sock)
            env["REDIS_URL"] = f"unix://{sock}"
        flask = [sys.executable, "-m", "flask", "--app", "portal"]
        cfg = current_app.config
        supervisor.spawn("smtp", sys.executable, "-m", "portal.mail.devsmtp", "--host",
                         cfg["SMTP_HOST"], "--port", str(cfg["SMTP_PORT"]),
                         "--dir", str(instance / "mail"))
        supervisor.spawn("worker", *default_worker_command(flask))
        supervisor.spawn("mail worker", *flask, "mailings", "worker")
        requeued = jobs.reconcile_all(min_age=timedelta(0))  # work saved while Redis was down
        uow.commit()  # the reconcilers' recoveries
        if requeued:
            click.echo(f"Queued {requeued} job(s) saved while the queue was down.")
        supervisor.spawn("cron", *flask, "rq", "cron")
        supervisor.spawn("web", *flask, "run", "--host", host, "--port", str(port))
        click.echo(f"Aftercare is running on http://{host}:{port}/ — mail is kept in "
                   f"{instance / 'mail'}. Press Ctrl-C to stop everything.")

        def stop(signum: int, _frame: object) -> None:
            raise KeyboardInterrupt  # SIGTERM/SIGHUP end everything, like Ctrl-C

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGHUP, stop)
        supervisor.run()
    except KeyboardInterrupt:
        click.echo("\nStopping…")
    finally:
        supervisor.stop()
