"""Fill a database with demo staff, events, customers and cases for the case-list benchmark.

Run from the checkout::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/aftercare_bench \\
        .venv/bin/python bench/generate_cases.py --count 100000

It migrates the database given by DATABASE_URL (``flask_migrate.upgrade`` in an app context;
SQLite ``instance/aftercare.db`` when unset), then adds two staff accounts (an agent and an
admin, password ``BENCH_PASSWORD``), three events, about 30,000 customers and ``--count``
cases spread over statuses, kinds, events, assignees, currencies and due dates, with bulk
inserts of 5,000 rows. It refuses a database that already holds cases or customers.

``bench/case_list.py`` imports :func:`generate` and calls it inside its own app context.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from portal.accounts import Role, User  # noqa: E402
from portal.auth import services as auth_services  # noqa: E402
from portal.cases.models import REASONS, Case  # noqa: E402
from portal.customers.models import Customer  # noqa: E402
from portal.events.models import Event  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import utcnow  # noqa: E402
from portal.refs import RefCounter  # noqa: E402

BATCH = 5000
BENCH_PASSWORD = "bench-password-2026"
AGENT_EMAIL = "bench-agent@example.com"
ADMIN_EMAIL = "bench-admin@example.com"
CUSTOMERS_PER_100K_CASES = 30_000

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国玉珍志红春梅海燕文辉晓东雪琳"
PINYIN = {
    "王": "wang", "李": "li", "张": "zhang", "刘": "liu", "陈": "chen", "杨": "yang",
    "黄": "huang", "赵": "zhao", "吴": "wu", "周": "zhou", "徐": "xu", "孙": "sun", "马": "ma",
    "朱": "zhu", "胡": "hu", "郭": "guo", "何": "he", "高": "gao", "林": "lin", "罗": "luo",
    "郑": "zheng", "梁": "liang", "谢": "xie", "宋": "song", "唐": "tang", "许": "xu",
    "韩": "han", "冯": "feng", "邓": "deng", "曹": "cao", "彭": "peng", "曾": "zeng",
    "肖": "xiao", "田": "tian", "董": "dong", "袁": "yuan", "潘": "pan", "于": "yu",
    "蒋": "jiang", "蔡": "cai", "余": "yu", "杜": "du",
}
FIRST = ("James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
         "David", "Elizabeth", "William", "Susan", "Richard", "Jessica", "Thomas", "Sarah",
         "Anna", "Lukas", "Sophie", "Jonas", "Léa", "Hugo", "Chloé", "Mateo", "Lucía", "Kenji")
LAST = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
        "Martinez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Müller",
        "Schmidt", "Dubois", "Lefèvre", "Rossi", "Fernández", "Tanaka", "O'Brien", "Nguyen")
COMPANIES = ("", "", "", "", "", "上海星辰贸易有限公司", "北京云帆科技有限公司",
             "深圳前海数智有限公司", "杭州青禾电子商务有限公司", "Acme Trading Ltd",
             "Blue Harbor GmbH", "Northwind Traders", "广州白云物流有限公司",
             "成都蜀道餐饮管理有限公司", "Contoso Retail", "Pacific Rim Imports")
DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "example.com",
           "foxmail.com", "sina.com")
SHOPS = ("TB", "JD", "PDD", "WX")

# weights out of 100
STATUSES = (("new", 20), ("in_progress", 22), ("proposed", 8), ("awaiting_signoff", 4),
            ("approved", 5), ("paid", 8), ("closed", 23), ("rejected", 6), ("withdrawn", 4))
CURRENCIES = (("CNY", 72), ("USD", 12), ("HKD", 10), ("EUR", 6))
EVENTS = (
    {"title": "CRM 服务中断 2026-10-14", "kind": "incident", "severity": "sev1",
     "cause": "platform", "status": "handling", "share": 0.5, "sla": 24},
    {"title": "华东仓配业务关停", "kind": "shutdown", "severity": "sev2", "cause": "business",
     "status": "winding_down", "share": 0.33, "sla": 48},
    {"title": "Payment double-charge incident", "kind": "incident", "severity": "sev3",
     "cause": "system", "status": "reviewing", "share": 0.17, "sla": 72},
)


@dataclass
class Generated:
    agent_id: int
    admin_id: int
    event_ids: list[int]
    customers: int
    cases: int
    seconds: float
    # things a benchmark wants to search for, taken from what was generated
    sample_ref: str
    sample_order_prefix: str
    sample_email_fragment: str


def _expand(weighted: tuple[tuple[str, int], ...]) -> list[str]:
    return [value for value, weight in weighted for _ in range(weight)]


def _batches(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prepare_schema() -> None:
    """Build or upgrade the schema with the migrations (needs an app context)."""
    from flask_migrate import upgrade

    upgrade()


def _staff(password: str) -> tuple[User, User]:
    found = {u.email: u for u in db.session.scalars(
        select(User).where(User.email.in_([AGENT_EMAIL, ADMIN_EMAIL])))}
    agent = found.get(AGENT_EMAIL) or auth_services.create_user(
        AGENT_EMAIL, "Bench Agent 客服", Role.AGENT, password, must_change_password=False)[0]
    admin = found.get(ADMIN_EMAIL) or auth_services.create_user(
        ADMIN_EMAIL, "Bench Admin 管理员", Role.ADMIN, password, must_change_password=False)[0]
    return agent, admin


def _customer_rows(n_customers: int, event_ids: list[int], rng: random.Random,
                   now: Any) -> Iterator[dict[str, Any]]:
    cut1 = int(n_customers * EVENTS[0]["share"])
    cut2 = cut1 + int(n_customers * EVENTS[1]["share"])
    for i in range(1, n_customers + 1):
        event_id = event_ids[0] if i <= cut1 else event_ids[1] if i <= cut2 else event_ids[2]
        if rng.random() < 0.6:
            surname = rng.choice(SURNAMES)
            name = surname + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
            local = f"{PINYIN[surname]}.{rng.choice(('wei', 'fang', 'na', 'min', 'jing'))}{i}"
            locale = "zh_CN"
        else:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = f"{first} {last}"
            local = f"{first.lower()}.{last.lower().replace(chr(39), '')}{i}"
            local = local.encode("ascii", "ignore").decode()
            locale = "en"
        created = now - timedelta(days=150, minutes=rng.randrange(0, 60 * 24 * 30))
        yield {
            "event_id": event_id, "external_ref": f"CUST-{i:06d}", "name": name,
            "company": rng.choice(COMPANIES), "email": f"{local}@{rng.choice(DOMAINS)}",
            "phone": f"+86 1{rng.randrange(30, 99)} {rng.randrange(1000, 9999)} "
                     f"{rng.randrange(1000, 9999)}",
            "locale": locale, "tags": rng.choice(([], [], ["vip"], ["enterprise"], ["b2c"])),
            "created_at": created, "updated_at": created,
        }


# Above this many cases PostgreSQL generates the rows itself (bench/generate_cases_pg.py).
SQL_SIDE_FROM = 200_000


def generate(count: int = 100_000, *, customers: int | None = None, seed: int = 2026,
             password: str = BENCH_PASSWORD, analyze: bool | None = None,
             sql_side: bool | None = None, log: Callable[[str], None] = print) -> Generated:
    """Add the data; needs an app context over a migrated, case-free database.

    ``sql_side`` (default: on PostgreSQL above SQL_SIDE_FROM cases) has the database generate
    the customers and cases with INSERT … SELECT generate_series, same distributions.

    ``analyze`` runs ANALYZE afterwards: by default on PostgreSQL only (VACUUM ANALYZE, what
    autovacuum does there within a minute of a bulk load), on SQLite only when asked (nothing
    in the portal runs it)."""
    started = time.perf_counter()
    rng = random.Random(seed)
    dialect = db.engine.dialect.name
    if db.session.scalar(select(func.count()).select_from(Case)) or db.session.scalar(
            select(func.count()).select_from(Customer)):
        raise SystemExit("The database already holds customers or cases; use an empty one.")
    n_customers = customers or max(1, round(count * CUSTOMERS_PER_100K_CASES / 100_000))
    now = utcnow()
    year = now.year

    agent, admin = _staff(password)
    events = []
    for spec in EVENTS:
        event = Event(title=spec["title"], kind=spec["kind"], severity=spec["severity"],
                      cause=spec["cause"], status=spec["status"],
                      summary="Generated by bench/generate_cases.py",
                      created_at=now - timedelta(days=160), created_by_id=admin.id)
        db.session.add(event)
        events.append(event)
    db.session.flush()
    event_ids = [e.id for e in events]
    sla = {e.id: spec["sla"] for e, spec in zip(events, EVENTS, strict=True)}
    agent_id, admin_id = agent.id, admin.id
    db.session.commit()

    if sql_side is None:
        sql_side = dialect == "postgresql" and count > SQL_SIDE_FROM
    if sql_side:
        import generate_cases_pg

        if event_ids != list(range(event_ids[0], event_ids[0] + len(event_ids))):
            raise SystemExit("SQL-side generation needs consecutive event ids")
        generate_cases_pg.customers(n_customers, event_ids, now, seed, sys.modules[__name__])
    else:
        for chunk in _batches(_customer_rows(n_customers, event_ids, rng, now)):
            db.session.execute(insert(Customer), chunk)
    db.session.commit()
    customer_event = dict(db.session.execute(select(Customer.id, Customer.event_id)).all())
    customer_ids = sorted(customer_event)
    emails = db.session.scalars(select(Customer.email).where(
        Customer.id == customer_ids[len(customer_ids) // 3])).all()
    how = " (SQL-side)" if sql_side else ""
    log(f"  {n_customers:,} customers{how} in {time.perf_counter() - started:.1f} s")

    statuses, currencies = _expand(STATUSES), _expand(CURRENCIES)
    assignees = [agent_id] * 45 + [admin_id] * 35 + [None] * 20
    span_minutes = 120 * 24 * 60  # cases opened over the last 120 days

    def case_rows() -> Iterator[dict[str, Any]]:
        for n in range(1, count + 1):
            customer_id = customer_ids[rng.randrange(len(customer_ids))]
            event_id = customer_event[customer_id]
            # ids rise with created_at, as they do in production
            created = now - timedelta(minutes=span_minutes * (count - n) / count
                                      + rng.random())
            due = created + timedelta(hours=sla[event_id] * rng.choice((1, 1, 1, 2, 4)))
            status = rng.choice(statuses)
            currency = rng.choice(currencies)
            cents = int(rng.lognormvariate(10.5, 1.1)) + 100
            if currency != "CNY":
                cents = cents // 7 + 100
            amount = Decimal(cents).scaleb(-2)
            approved = amount if status in ("approved", "paid", "closed") else None
            yield {
                "ref": f"C-{year}-{n:05d}", "event_id": event_id, "customer_id": customer_id,
                "kind": "refund" if rng.random() < 0.62 else "compensation",
                "order_ref": f"{SHOPS[n % len(SHOPS)]}-{n:07d}", "amount": amount,
                "currency": currency, "reason": rng.choice(REASONS), "description": "",
                "assignee_id": rng.choice(assignees), "status": status, "due_at": due,
                "approved_amount": approved, "created_by_id": agent_id, "created_at": created,
                "updated_at": created, "lock_version": 1,
            }

    if sql_side:
        if customer_ids[-1] - customer_ids[0] + 1 != len(customer_ids):
            raise SystemExit("SQL-side generation needs consecutive customer ids")
        generate_cases_pg.cases(count, sla, agent_id, admin_id, now, year,
                                sys.modules[__name__])
        db.session.commit()
    # render_nulls: keep NULL columns in the statement, so that rows with and without an
    # assignee or approved amount go in the same multi-row INSERT (not one INSERT each)
    for i, chunk in enumerate(_batches(case_rows() if not sql_side else iter(())), 1):
        db.session.execute(insert(Case).execution_options(render_nulls=True), chunk)
        if i % 5 == 0:
            db.session.commit()
    counter = db.session.scalar(select(RefCounter).where(RefCounter.name == f"C-{year}"))
    if counter is None:
        db.session.add(RefCounter(name=f"C-{year}", value=count))
    else:
        counter.value = max(counter.value, count)
    db.session.commit()
    if analyze if analyze is not None else dialect == "postgresql":
        with db.engine.connect() as conn:
            if dialect == "postgresql":  # what autovacuum does soon after a bulk load
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("VACUUM ANALYZE"))
            else:
                conn.execute(text("ANALYZE"))
                conn.commit()
    seconds = time.perf_counter() - started
    log(f"  {count:,} cases in {seconds:.1f} s in all ({dialect})")
    sample = count * 2 // 3 or 1
    return Generated(
        agent_id=agent_id, admin_id=admin_id, event_ids=event_ids, customers=n_customers,
        cases=count, seconds=seconds, sample_ref=f"C-{year}-{sample:05d}",
        sample_order_prefix=f"{SHOPS[sample % len(SHOPS)]}-{sample // 100:05d}",
        sample_email_fragment=emails[0].split("@")[0][:-1] if emails else "wang",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="cases to add")
    parser.add_argument("--customers", type=int, default=None,
                        help="customers to add (default: 30%% of --count)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--analyze", action="store_true",
                        help="run ANALYZE afterwards on SQLite too")
    args = parser.parse_args(argv)

    from portal import create_app

    app = create_app()
    with app.app_context():
        print(f"Migrating {db.engine.url.render_as_string(hide_password=True)} …")
        prepare_schema()
        result = generate(args.count, customers=args.customers, seed=args.seed,
                          analyze=True if args.analyze else None)
    print(f"Done: {result.customers:,} customers, {result.cases:,} cases in "
          f"{result.seconds:.1f} s. Sign in as {AGENT_EMAIL} or {ADMIN_EMAIL} with password "
          f"{BENCH_PASSWORD!r}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
