"""Measure the staff case list against DESIGN.md ("Targets"): filter + search + sort + page
p95 < 100 ms with 100,000 cases on SQLite, and with 1,000,000 cases on PostgreSQL.

Run from the checkout: ``.venv/bin/python bench/case_list.py`` (100,000 cases on both
databases) or ``… --count 1000000`` (the same, plus 1,000,000 cases on PostgreSQL, all side
by side; ``--large-on sqlite`` adds SQLite at that size too). For SQLite (a temporary file)
and for PostgreSQL (a fresh database ``aftercare_bench_<pid>`` on
postgresql://postgres@127.0.0.1:5432, dropped at the end) it

1. migrates the database and fills it with ``bench/generate_cases.py`` (100,000 cases,
   30,000 customers, 3 events, an agent and an admin; 30 % as many customers as cases at
   any size, generated inside PostgreSQL above 200,000 cases);
2. signs in as the agent through ``POST /login`` with the Flask test client;
3. requests ``GET /cases/`` with a mix of realistic filters, searches, sorts and pages: each
   query once to warm up, then ``--repeat`` rounds over all of them (interleaved, so noise
   spreads evenly), timing the whole request and, through Flask's template signals, the
   template render inside it; then a few rounds of the htmx partial
   (``HX-Target: case-results``) and of the database work alone (the view's keyset page
   and its count, exact up to CASE_COUNT_THRESHOLD and estimated above it); the deep page
   is page 50 reached by its ``after=`` cursor, as the list's "Next page" link gives it;
4. prints p50/p95 per query side by side, the overall p95 per database with PASS/FAIL, and
   the SQL the view sent for the slowest query of each database with its plan (PostgreSQL
   ``EXPLAIN (ANALYZE, BUFFERS)``, SQLite ``EXPLAIN QUERY PLAN``).

``--with-indexes`` adds the indexes of ``RECOMMENDED_INDEXES`` (and runs ANALYZE) in the
benchmark database before measuring, to show what indexes alone change; the portal's own
schema is not touched.

It is a measurement, not a test: it exits 0 whatever the numbers (non-zero only when it could
not measure). About four minutes on a 2-core machine at 100,000 cases; with
``--count 1000000`` about fifteen more.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

import generate_cases  # noqa: E402
from flask import Flask, before_render_template, template_rendered  # noqa: E402
from sqlalchemy import event, select, text  # noqa: E402
from sqlalchemy.orm import joinedload  # noqa: E402

from bench.databases import PG_ADMIN_URL, postgres_database  # noqa: E402
from portal import create_app  # noqa: E402
from portal.cases import views as case_views  # noqa: E402
from portal.cases.models import Case  # noqa: E402
from portal.extensions import db  # noqa: E402

TARGET_P95_MS = 100.0
BASE_COUNT = 100_000
PARTIAL_HEADERS = {"HX-Request": "true", "HX-Target": "case-results"}
OPEN_NOT_PAID = "('new', 'in_progress', 'proposed', 'awaiting_signoff', 'approved')"

# What --with-indexes adds beyond the migrated schema (migration h16_d1 took in the sort keys
# and the trigram indexes this list used to recommend), to see what each would change.
RECOMMENDED_INDEXES = {
    "common": [
        "CREATE INDEX IF NOT EXISTS ix_case_open_created ON case_file (created_at, id) "
        f"WHERE status IN {OPEN_NOT_PAID}",
    ],
    "postgresql": [
        "CREATE INDEX IF NOT EXISTS ix_case_order_ref_prefix "
        "ON case_file (order_ref varchar_pattern_ops)",
    ],
    "sqlite": [
        "CREATE INDEX IF NOT EXISTS ix_case_order_ref_nocase "
        "ON case_file (order_ref COLLATE NOCASE)",
    ],
}


@dataclass
class QueryResult:
    label: str
    params: dict[str, Any]
    rows: int = 0
    estimated: bool = False
    full: list[float] = field(default_factory=list)
    render: list[float] = field(default_factory=list)
    partial: list[float] = field(default_factory=list)
    db_only: list[float] = field(default_factory=list)


@dataclass
class BackendResult:
    name: str
    generate_seconds: float
    queries: list[QueryResult]
    plans: list[str]

    def all_full(self) -> list[float]:
        return [t for q in self.queries for t in q.full]


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(p / 100 * len(ordered)))) - 1]


def gen_deep_cursor(gen: generate_cases.Generated) -> str:
    """The cursor the 49th "Next page" link carries (newest first; needs an app context)."""
    from portal.cases.search import Cursor

    case = db.session.scalars(select(Case).order_by(Case.created_at.desc(), Case.id.desc())
                              .offset(49 * case_views.PAGE_SIZE - 1).limit(1)).one()
    return Cursor.of(case, "newest").encode()


def queries_for(gen: generate_cases.Generated) -> list[QueryResult]:
    """The query mix (needs an app context for the deep page's cursor)."""
    ev = gen.event_ids
    return [
        QueryResult("no filter (newest)", {}),
        QueryResult("status=in_progress", {"status": "in_progress"}),
        QueryResult("kind=refund + event", {"kind": "refund", "event": ev[1]}),
        QueryResult("assignee=agent + sort=due", {"assignee": gen.agent_id, "sort": "due"}),
        QueryResult("overdue=1", {"overdue": "1"}),
        QueryResult("status=new+overdue+sort=due", {"status": "new", "overdue": "1",
                                                    "sort": "due"}),
        QueryResult("q=case ref (lower case)", {"q": gen.sample_ref.lower()}),
        QueryResult("q=Chinese name 秀英", {"q": "秀英"}),
        QueryResult("q=Latin name smith", {"q": "smith"}),
        QueryResult(f"q=e-mail {gen.sample_email_fragment}", {"q": gen.sample_email_fragment}),
        QueryResult(f"q=order prefix {gen.sample_order_prefix}",
                    {"q": gen.sample_order_prefix}),
        QueryResult("page 50 (keyset after=)", {"after": gen_deep_cursor(gen)}),
        QueryResult("sort=amount", {"sort": "amount"}),
    ]


# --- databases -------------------------------------------------------------------------------




def make_app(url: str, instance: Path) -> Flask:
    instance.mkdir(parents=True, exist_ok=True)
    return create_app({
        "SECRET_KEY": "bench-secret",
        "SQLALCHEMY_DATABASE_URI": url,
        "REDIS_URL": f"unix://{instance / 'no-redis.sock'}",  # the list never queues a job
        "WTF_CSRF_ENABLED": False,
        "PASSWORD_METHOD": "pbkdf2:sha256:1000",
        "INSTANCE_PATH": str(instance),
    })


def add_indexes() -> None:
    """The RECOMMENDED_INDEXES, in the benchmark database only (needs an app context)."""
    dialect = db.engine.dialect.name
    started = time.perf_counter()
    with db.engine.connect() as conn:
        if dialect == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for ddl in RECOMMENDED_INDEXES["common"] + RECOMMENDED_INDEXES[dialect]:
            conn.execute(text(ddl))
        conn.execute(text("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE"))
        conn.commit()
    print(f"  recommended indexes added and analyzed in {time.perf_counter() - started:.1f} s",
          flush=True)


# --- measuring -------------------------------------------------------------------------------


def time_db_only(app: Flask, params: dict[str, Any]) -> tuple[float, int]:
    """The view's database work alone: its statement and options through db.paginate."""
    with app.test_request_context("/cases/", query_string=params):
        started = time.perf_counter()
        flt = case_views._filter()
        page = flt.page(after=params.get("after", ""), size=case_views.PAGE_SIZE,
                        options=(joinedload(Case.customer), joinedload(Case.assignee)))
        count = flt.count(app.config["CASE_COUNT_THRESHOLD"],
                          exact=params.get("count") == "exact")
        for case in page.items:  # what the template touches
            _ = case.customer.name, case.assignee.name if case.assignee else None
        elapsed = (time.perf_counter() - started) * 1000
        db.session.remove()
    return elapsed, count.value, count.estimated


def login(client: Any) -> None:
    response = client.post("/login", data={"email": generate_cases.AGENT_EMAIL,
                                           "password": generate_cases.BENCH_PASSWORD})
    if response.status_code != 302:
        raise SystemExit(f"Could not sign in as the agent: HTTP {response.status_code}")


def explain(app: Flask, params: dict[str, Any]) -> str:
    """The SQL the view sends for these parameters (captured from the driver), with plans."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        if "case_file" in statement and statement.lstrip().upper().startswith(
                ("SELECT", "WITH")):
            captured.append((statement, parameters))

    client = app.test_client()
    login(client)
    with app.app_context():
        engine = db.engine
    dialect = engine.dialect.name
    event.listen(engine, "before_cursor_execute", capture)
    try:
        client.get("/cases/", query_string=params)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    out = []
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:
        for statement, parameters in captured:
            out.append(f"-- SQL sent by the view ({dialect}), parameters {parameters!r}:\n"
                       f"{statement.strip()}")
            started = time.perf_counter()
            rows = conn.exec_driver_sql(prefix + statement, parameters).all()
            took = (time.perf_counter() - started) * 1000
            if dialect == "postgresql":
                plan = "\n".join(r[0] for r in rows)
            else:
                depth = {0: -1}
                lines = []
                for r in rows:  # (id, parent, notused, detail)
                    depth[r[0]] = depth.get(r[1], 0) + 1
                    lines.append("  " * depth[r[0]] + r[-1])
                plan = "\n".join(lines)
            out.append(f"-- {prefix.strip()} ({took:.0f} ms):\n{plan}")
    return "\n".join(out)


@contextmanager
def render_timer(app: Flask, sink: list[float]) -> Iterator[None]:
    """Collect the time each template render takes (Flask's render signals)."""
    starts: list[float] = []

    def before(sender: Any, template: Any, context: Any, **extra: Any) -> None:
        starts.append(time.perf_counter())

    def after(sender: Any, template: Any, context: Any, **extra: Any) -> None:
        sink.append((time.perf_counter() - starts.pop()) * 1000)

    before_render_template.connect(before, app)
    template_rendered.connect(after, app)
    try:
        yield
    finally:
        before_render_template.disconnect(before, app)
        template_rendered.disconnect(after, app)


def measure(name: str, url: str, instance: Path, count: int, repeat: int, breakdown: int,
            with_indexes: bool, explain_all: bool) -> BackendResult:
    print(f"\n[{name}] migrating and generating {count:,} cases …", flush=True)
    app = make_app(url, instance)
    with app.app_context():
        generate_cases.prepare_schema()
        gen = generate_cases.generate(count, log=lambda s: print(s, flush=True))
        # What the portal's hourly maintenance job does (PostgreSQL's autovacuum analyzes
        # by itself); measured as a running portal sees its data, not right after a bulk load.
        from portal.main.tasks import optimize_database_job

        optimize_database_job()
        if with_indexes:
            add_indexes()
        queries = queries_for(gen)
    client = app.test_client()
    login(client)
    renders: list[float] = []

    def get(q: QueryResult, partial: bool = False) -> float:
        renders.clear()
        started = time.perf_counter()
        response = client.get("/cases/", query_string=q.params,
                              headers=PARTIAL_HEADERS if partial else None)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"GET /cases/ {q.params} answered {response.status_code}")
        if partial and b"<html" in response.data[:300].lower():
            raise SystemExit("the htmx request got the whole page, not the partial")
        if not partial:
            q.render.append(sum(renders))
        return elapsed

    print(f"[{name}] warm-up, then {repeat} interleaved rounds of {len(queries)} queries "
          f"(+ {breakdown} rounds of partial and db-only) …", flush=True)
    with render_timer(app, renders):
        for q in queries:
            get(q)
            get(q, partial=True)
            _, q.rows, q.estimated = time_db_only(app, q.params)
            q.render.clear()
        for _round in range(repeat):
            for q in queries:
                q.full.append(get(q))
        for _round in range(breakdown):
            for q in queries:
                q.partial.append(get(q, partial=True))
                q.db_only.append(time_db_only(app, q.params)[0])
    slow = sorted(queries, key=lambda q: pct(q.full, 95), reverse=True)
    chosen = [q for q in slow if pct(q.full, 95) > TARGET_P95_MS] if explain_all else []
    plans = [f"== slowest: {q.label}  {q.params}\n{explain(app, q.params)}"
             for q in chosen or slow[:1]]
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return BackendResult(name, gen.seconds, queries, plans)


# --- report ----------------------------------------------------------------------------------


# The p95 figures issue 16 reported before keyset pages, the estimated count and the trigram
# indexes (100,000 cases; ms): printed beside today's for comparison.
EARLIER = {
    "SQLite 100k": {"overall": 176, "q=Latin name smith": 124, "overdue=1": 251},
    "PG 100k": {"overall": 136, "q=Latin name smith": 346, "page 50 (keyset after=)": 123},
}


def report(results: list[BackendResult], repeat: int, breakdown: int,
           with_indexes: bool) -> None:
    names = [r.name for r in results]
    width = max(len(q.label) for q in results[0].queries) + 2
    schema = "schema + RECOMMENDED_INDEXES" if with_indexes else "portal schema as migrated"
    print(f"\nGET /cases/ signed in as the agent, {schema}: whole request (keyset page + "
          f"count + render), {repeat} runs each, ms; rows = the count the page shows "
          f"(~ = estimated above CASE_COUNT_THRESHOLD)")
    head = f"{'query':<{width}}" + "".join(f"{n + ' rows':>19}{'p50':>8}{'p95':>8} "
                                          for n in names)
    print(head)
    print("-" * len(head))
    for i, q0 in enumerate(results[0].queries):
        line = f"{q0.label:<{width}}"
        for r in results:
            q = r.queries[i]
            flag = "!" if pct(q.full, 95) > TARGET_P95_MS else " "
            rows = f"{'~' if q.estimated else ''}{q.rows:,}"
            line += f"{rows:>19}{pct(q.full, 50):>8.1f}{pct(q.full, 95):>8.1f}{flag}"
        print(line)
    print("-" * len(head))
    line = f"{'overall p95 (all requests)':<{width}}"
    for r in results:
        line += f"{'':>19}{'':>8}{pct(r.all_full(), 95):>8.1f} "
    print(line)
    line = f"{'p95 / target (100 ms)':<{width}}"
    for r in results:
        line += f"{'':>19}{'':>8}{pct(r.all_full(), 95) / TARGET_P95_MS:>7.2f}x "
    print(line)
    line = f"{'target p95 < 100 ms':<{width}}"
    for r in results:
        verdict = "PASS" if pct(r.all_full(), 95) < TARGET_P95_MS else "FAIL"
        line += f"{'':>19}{'':>8}{verdict:>8} "
    print(line)
    print("(! = this query's own p95 is over 100 ms)")
    print("\nBefore and now, p95 ms (before: issue 16, 100,000 cases, offset pages and COUNT(*)):")
    for r in results:
        before = EARLIER.get(r.name)
        if not before:
            continue
        now = {"overall": pct(r.all_full(), 95), **{q.label: pct(q.full, 95) for q in r.queries}}
        print(f"  {r.name:<12} " + "; ".join(
            f"{label} {ms} -> {now[label]:.1f}" for label, ms in before.items() if label in now))

    print(f"\nWhere the time goes, p50 ms. db = the view's keyset page and its count "
          f"(CaseFilter.page and .count), no template ({breakdown} runs); render = template "
          f"render inside the full request ({repeat} runs); partial = whole htmx request "
          f"for #case-results ({breakdown} runs)")
    head = f"{'query':<{width}}" + "".join(
        f"{n[:6] + ' db':>11}{'render':>8}{'full':>8}{'partial':>9} " for n in names)
    print(head)
    print("-" * len(head))
    for i, q0 in enumerate(results[0].queries):
        line = f"{q0.label:<{width}}"
        for r in results:
            q = r.queries[i]
            line += (f"{pct(q.db_only, 50):>11.1f}{pct(q.render, 50):>8.1f}"
                     f"{pct(q.full, 50):>8.1f}{pct(q.partial, 50):>9.1f} ")
        print(line)
    for r in results:
        print(f"\n{r.name}: data generated in {r.generate_seconds:.1f} s")
        for plan in r.plans:
            print(plan)


def size_label(count: int) -> str:
    return f"{count // 1_000_000}M" if count % 1_000_000 == 0 else f"{count // 1000}k"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=BASE_COUNT,
                        help="a second size, measured after 100,000 on both databases")
    parser.add_argument("--large-on", nargs="+", choices=("sqlite", "postgresql"),
                        default=["postgresql"], help="the databases of the second size")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per query")
    parser.add_argument("--breakdown", type=int, default=3,
                        help="runs per query of the htmx partial and of the db-only timing")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL,
                        help="where to create (and drop) the temporary PostgreSQL database")
    parser.add_argument("--with-indexes", action="store_true",
                        help="add RECOMMENDED_INDEXES to the benchmark databases first")
    parser.add_argument("--explain-all", action="store_true",
                        help="print the plans of every query over the target, not only the "
                             "slowest")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="aftercare-bench-cases-"))
    results: list[BackendResult] = []
    rest = (args.repeat, args.breakdown, args.with_indexes, args.explain_all)
    runs = [(BASE_COUNT, db_name) for db_name in ("sqlite", "postgresql")]
    if args.count != BASE_COUNT:
        runs += [(args.count, db_name) for db_name in args.large_on]
    try:
        for count, db_name in runs:
            if args.only and db_name != args.only:
                continue
            label = f"{'SQLite' if db_name == 'sqlite' else 'PG'} {size_label(count)}"
            if db_name == "sqlite":
                results.append(measure(label, f"sqlite:///{tmp / f'bench-{count}.db'}",
                                       tmp / f"sqlite-{count}", count, *rest))
            else:
                with postgres_database(args.pg_admin_url) as url:
                    results.append(measure(label, url, tmp / f"postgresql-{count}", count,
                                           *rest))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, args.repeat, args.breakdown, args.with_indexes)
    print(f"\n(whole run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
