"""Measure a programme's case generation against DESIGN.md ("Targets"): 100,000 eligible
customers in < 60 s, memory flat.

Run from the checkout: ``.venv/bin/python bench/programme_generation.py``. For SQLite (a
temporary file) and PostgreSQL (a fresh database ``aftercare_bench_<pid>`` on
postgresql://postgres@127.0.0.1:5432, dropped at the end) it migrates the database, then for
10,000 and 100,000 customers, each in a fresh child process (so that its peak RSS is its
own), calls :func:`bench_generation`:

1. bulk-inserts an event, the customers (5% without an e-mail address) and one or two
   entitlements each, and a signed-off programme (10 % of the basis, simple interest at 3 %
   a year, a cap, a low-value threshold under which about 4% are written off), its digests
   those of ``portal.programmes.rules``;
2. runs the job's work directly (``generation.run_generation`` with ``uow.commit`` as the
   checkpoint, as ``tasks.generate_cases_job`` does, no RQ): the binding check, the count,
   then the chunks;
3. checks the result: the programme running at 100 %, one member per customer the rules
   keep, one approved case per eligible member, the written-off and no-address members, the
   case total equal to the computation's total to the cent, every case ref distinct; and a
   second run creating nothing.

It prints seconds, customers/s, the peak RSS (``ru_maxrss``) before and after, and PASS/FAIL
for 60 s and for flat memory. It is a measurement, not a test: it exits 0 whatever the
numbers (non-zero only when it could not measure). A few minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.customer_import import reset_peak, rss_mb  # noqa: E402
from bench.databases import PG_ADMIN_URL, migrate, postgres_database  # noqa: E402

TARGET_SECONDS = 60.0
FLAT_LIMIT_MB = 10.0
SIZES = (10_000, 100_000)
BATCH = 5000


def _setup(count: int, seed: int = 14) -> int:
    """An event, ``count`` customers with entitlements and a signed-off programme; its id."""
    from sqlalchemy import insert, select

    from portal.customers.models import Customer
    from portal.events.models import Event
    from portal.extensions import db
    from portal.models import utcnow
    from portal.programmes import rules
    from portal.programmes.models import Entitlement, Programme

    rng = random.Random(seed)
    now = utcnow()
    event = Event(title=f"Programme bench {count}", kind="shutdown", severity="sev2",
                  cause="business", status="aftercare")
    db.session.add(event)
    db.session.flush()
    for start in range(0, count, BATCH):
        rows = [{"event_id": event.id, "external_ref": f"P-{i:07d}", "name": f"客户 {i}",
                 "email": "" if i % 20 == 3 else f"user{i}@example.com", "locale": "zh_CN",
                 "tags": [], "created_at": now, "updated_at": now,
                 "audit_salt": f"{i:064x}"} for i in range(start, min(start + BATCH, count))]
        db.session.execute(insert(Customer), rows)
    ids = list(db.session.scalars(select(Customer.id).where(Customer.event_id == event.id)
                                  .order_by(Customer.id)))
    for start in range(0, len(ids), BATCH):
        rows = []
        for customer_id in ids[start:start + BATCH]:
            for order in range(1 + (customer_id % 3 == 0)):
                basis = (Decimal(rng.randrange(1000, 200_000)) / 100 if customer_id % 25
                         else Decimal(rng.randrange(100, 900)) / 100)  # some below 5.00
                rows.append({"event_id": event.id, "customer_id": customer_id,
                             "order_ref": f"ORD-{customer_id}-{order}", "basis_amount": basis,
                             "currency": "CNY",
                             "basis_date": date(2025, 1, 1) + timedelta(days=customer_id % 365),
                             "attributes": {}, "created_at": now, "updated_at": now})
        db.session.execute(insert(Entitlement), rows)
    programme = Programme(
        event_id=event.id, name_zh="关停补偿", name_en="Shutdown compensation",
        kind="compensation", currency="CNY", calculation_date=date(2026, 6, 30),
        rules={"amount": {"method": "percentage", "percentage": "10", "interest_rate": "3",
                          "cap": "1500.00"}, "eligibility": {}},
        low_value_threshold=Decimal("5.00"), low_value_action="write_off", status="generating")
    db.session.add(programme)
    db.session.flush()
    programme.entitlements_sha256 = rules.entitlements_digest(event.id)
    programme.amounts_sha256 = rules.amounts_digest(rules.compute(programme))
    db.session.commit()
    return programme.id


def _expected(programme_id: int) -> dict[str, Any]:
    """What the computation says: members, cases, written off, the case total."""
    from portal.extensions import db
    from portal.programmes import rules
    from portal.programmes.models import Programme

    programme = db.session.get(Programme, programme_id)
    found = {"members": 0, "cases": 0, "written_off": 0, "total": Decimal(0)}
    for row in rules.compute(programme):
        if row.eligible:
            found["members"] += 1
            found["cases"] += 1
            found["total"] += row.amount
        elif row.excluded == "written_off":
            found["members"] += 1
            found["written_off"] += 1
    return found


def bench_generation(url: str, instance: Path, count: int) -> dict[str, Any]:
    """Set up ``count`` customers and a signed-off programme, then create its cases as the job
    does, measured; the seconds, the memory and the checks."""
    from sqlalchemy import func, select

    from portal import create_app, uow
    from portal.cases.models import Case
    from portal.extensions import db
    from portal.programmes import generation
    from portal.programmes.models import MemberStatus, Programme, ProgrammeMember

    app = create_app({
        "SECRET_KEY": "bench-secret", "SQLALCHEMY_DATABASE_URI": url,
        "REDIS_URL": f"unix://{instance / 'no-redis.sock'}", "INSTANCE_PATH": str(instance),
    })
    with app.app_context():
        t0 = time.perf_counter()
        programme_id = _setup(count)
        setup_s = time.perf_counter() - t0
        expected = _expected(programme_id)
        db.session.expire_all()
        startup_peak, _ = rss_mb()
        reset = reset_peak()
        peak_before, rss_before = rss_mb()

        t1 = time.perf_counter()
        generation.run_generation(programme_id, checkpoint=uow.commit)
        generate_s = time.perf_counter() - t1
        peak_after, rss_after = rss_mb()

        db.session.expire_all()
        programme = db.session.get(Programme, programme_id)
        members = dict(db.session.execute(
            select(ProgrammeMember.status, func.count(ProgrammeMember.id))
            .where(ProgrammeMember.programme_id == programme_id)
            .group_by(ProgrammeMember.status)).all())
        cases, total, refs = db.session.execute(
            select(func.count(Case.id), func.sum(Case.approved_amount),
                   func.count(func.distinct(Case.ref)))
            .where(Case.programme_id == programme_id)).one()
        # A second run (forced back to generating) creates nothing.
        programme.status = "generating"
        db.session.commit()
        t2 = time.perf_counter()
        generation.run_generation(programme_id, checkpoint=uow.commit)
        rerun_s = time.perf_counter() - t2
        again = db.session.scalar(select(func.count(Case.id))
                                  .where(Case.programme_id == programme_id))
        return {
            "status": programme.status, "percent": generation.progress_percent(programme),
            "error": programme.error, "members": sum(members.values()),
            "written_off": members.get(MemberStatus.WRITTEN_OFF, 0),
            "no_address": members.get(MemberStatus.UNCLAIMED, 0),
            "cases": cases, "distinct_refs": refs, "total": str(total or 0),
            "cases_after_rerun": again, "expected": {k: str(v) for k, v in expected.items()},
            "setup_s": setup_s, "generate_s": generate_s, "rerun_s": rerun_s,
            "startup_peak_mb": startup_peak, "peak_reset": reset,
            "peak_before_mb": peak_before, "peak_after_mb": peak_after,
            "rss_before_mb": rss_before, "rss_after_mb": rss_after,
        }


# --- the parent ------------------------------------------------------------------------------


@dataclass
class Run:
    backend: str
    count: int
    result: dict[str, Any]

    def problems(self) -> list[str]:
        r, e = self.result, self.result["expected"]
        checks = [
            ("status", r["status"], "running"), ("progress", r["percent"], 100),
            ("members", str(r["members"]), e["members"]), ("cases", str(r["cases"]), e["cases"]),
            ("written off", str(r["written_off"]), e["written_off"]),
            ("case total", r["total"], e["total"]), ("distinct refs", r["distinct_refs"],
                                                      r["cases"]),
            ("cases after a second run", r["cases_after_rerun"], r["cases"]),
        ]
        return [f"{what}: {got} (expected {want})" for what, got, want in checks if got != want]


def run_child(backend: str, url: str, count: int, instance: Path) -> Run:
    print(f"[{backend}] {count:,} customers …", flush=True)
    proc = subprocess.run([sys.executable, __file__, "--child", url, str(instance), str(count)],
                          capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"the {backend} run of {count:,} customers failed")
    return Run(backend, count, json.loads(lines[-1][len("RESULT "):]))


def report(runs: list[Run]) -> None:
    print("\nProgramme case generation, the job's work called directly (no RQ), one child "
          "process per run; seconds; MB of ru_maxrss (peak RSS), its high-water mark reset "
          "when the generation starts where the kernel allows")
    head = (f"{'database':<11}{'customers':>10}{'setup':>8}{'generate':>9}{'cust/s':>8}"
            f"{'members':>9}{'cases':>8}{'w/off':>7}{'no addr':>8}{'rerun':>7}"
            f"{'before':>8}{'after':>8}{'growth':>8}")
    print(head)
    print("-" * len(head))
    for run in runs:
        r = run.result
        print(f"{run.backend:<11}{run.count:>10,}{r['setup_s']:>8.1f}{r['generate_s']:>9.2f}"
              f"{run.count / r['generate_s']:>8,.0f}{r['members']:>9,}{r['cases']:>8,}"
              f"{r['written_off']:>7,}{r['no_address']:>8,}{r['rerun_s']:>7.1f}"
              f"{r['peak_before_mb']:>8.1f}{r['peak_after_mb']:>8.1f}"
              f"{r['peak_after_mb'] - r['peak_before_mb']:>+8.1f}")
    print("-" * len(head))
    for backend in dict.fromkeys(run.backend for run in runs):
        mine = {run.count: run for run in runs if run.backend == backend}
        big, small = mine[max(mine)], mine[min(mine)]
        growth = {n: r.result["peak_after_mb"] - r.result["peak_before_mb"]
                  for n, r in mine.items()}
        extra = growth[big.count] - growth[small.count]
        speed = "PASS" if big.result["generate_s"] < TARGET_SECONDS else "FAIL"
        flat = "PASS" if extra <= FLAT_LIMIT_MB else "FAIL"
        problems = [f"{r.count:,}: {p}" for r in mine.values() for p in r.problems()]
        print(f"{backend}: {big.count:,} customers in {big.result['generate_s']:.1f} s (target "
              f"< {TARGET_SECONDS:.0f} s) {speed}; peak memory grew {growth[small.count]:.1f} "
              f"MB for {small.count:,} and {growth[big.count]:.1f} MB for {big.count:,}: "
              f"{extra:+.1f} MB (flat: <= {FLAT_LIMIT_MB:.0f} MB) {flat}; totals "
              f"{'reconcile to the cent' if not problems else 'WRONG: ' + '; '.join(problems)}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        result = bench_generation(argv[1], Path(argv[2]), int(argv[3]))
        print("RESULT " + json.dumps(result, ensure_ascii=False))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="aftercare-bench-programme-"))
    runs: list[Run] = []
    try:
        for backend in [b for b in ("sqlite", "postgresql") if args.only in (None, b)]:
            instance = tmp / backend
            instance.mkdir()
            if backend == "sqlite":
                url = f"sqlite:///{tmp / 'bench.db'}"
                migrate(url, instance)
                runs += [run_child("SQLite", url, n, instance) for n in args.sizes]
            else:
                with postgres_database(args.pg_admin_url) as url:
                    migrate(url, instance)
                    runs += [run_child("PostgreSQL", url, n, instance) for n in args.sizes]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(runs)
    print(f"\n(whole run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
