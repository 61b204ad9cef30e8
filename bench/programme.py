"""Measure a remediation programme against DESIGN.md ("Targets") and issue 14: 100,000
eligible customers — preview < 5 s; legal's sign-off (request, decision, binding check) timed.
Further sections (case generation, payout file, result import) are added in ``SECTIONS``.

Run from the checkout: ``.venv/bin/python bench/programme.py``. For SQLite (a temporary file)
and PostgreSQL (a fresh database ``aftercare_bench_<pid>`` on
postgresql://postgres@127.0.0.1:5432, dropped at the end), or only the database given by
``--database-url`` (migrated first; it must hold no customers), it

1. migrates the database and, in a child process, seeds one event with ``--customers``
   customers and one entitlement each (every tenth customer two, one of them in USD so that
   it is left out), with bulk inserts of 5,000 rows, and a draft programme (10 % of the basis
   plus 3 % simple interest, a cap, a low-value threshold paid without asking);
2. runs each section in its own child process (so each starts cold and its memory is its own)
   and prints the seconds against the target with PASS/FAIL, the databases side by side.

It is a measurement, not a test: it exits 0 whatever the numbers (non-zero only when it could
not measure), and removes everything it created.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.databases import PG_ADMIN_URL, migrate, postgres_database  # noqa: E402

CUSTOMERS = 100_000
BATCH = 5000
TARGETS = {"preview": 5.0}
BENCH_EMAIL = "bench-programme@example.com"


def _app(url: str, instance: Path) -> Any:
    from portal import create_app

    return create_app({"SECRET_KEY": "bench-secret", "SQLALCHEMY_DATABASE_URI": url,
                       "REDIS_URL": f"unix://{instance / 'no-redis.sock'}",
                       "INSTANCE_PATH": str(instance), "IMPORT_DIR": str(instance),
                       "PASSWORD_METHOD": "pbkdf2:sha256:1000"})


# --- seeding ---------------------------------------------------------------------------------


def seed(url: str, instance: Path, customers: int) -> dict[str, Any]:
    """One event, ``customers`` customers with entitlements (bulk), a draft programme."""
    from datetime import date, timedelta
    from decimal import Decimal

    from sqlalchemy import func, insert, select

    from portal.accounts import Role
    from portal.auth import services as auth
    from portal.customers.models import Customer
    from portal.events import services as events
    from portal.extensions import db
    from portal.models import utcnow
    from portal.programmes import services as programmes
    from portal.programmes.models import Entitlement

    rng = random.Random(14)
    app = _app(url, instance)
    started = time.perf_counter()
    with app.app_context():
        if db.session.scalar(select(func.count()).select_from(Customer)):
            raise SystemExit("the database already holds customers")
        actor, _ = auth.create_user(BENCH_EMAIL, "Bench Agent", Role.AGENT,
                                    "bench-password-2026", must_change_password=False)
        event = events.create_event(title="Bench outage", kind="incident", severity="sev2",
                                    cause="system", actor=actor)
        db.session.commit()
        now = utcnow()
        for start in range(0, customers, BATCH):
            numbers = range(start, min(start + BATCH, customers))
            db.session.execute(insert(Customer), [
                {"event_id": event.id, "external_ref": f"B{n:07d}", "name": f"Kunde {n}",
                 "email": f"kunde{n}@example.com", "locale": "zh_CN" if n % 5 else "en",
                 "tags": ["vip"] if n % 3 == 0 else [], "created_at": now, "updated_at": now}
                for n in numbers])
            ids = dict(db.session.execute(select(Customer.external_ref, Customer.id).where(
                Customer.event_id == event.id,
                Customer.external_ref.in_([f"B{n:07d}" for n in numbers]))).tuples().all())
            rows = []
            for n in numbers:
                customer_id = ids[f"B{n:07d}"]
                basis = Decimal(rng.randint(1_000, 500_000)).scaleb(-2)
                owed_from = date(2025, 1, 1) + timedelta(days=rng.randint(0, 364))
                rows.append({"event_id": event.id, "customer_id": customer_id,
                             "order_ref": f"WD-{n:07d}", "basis_amount": basis,
                             "currency": "CNY", "basis_date": owed_from, "attributes": {},
                             "created_at": now, "updated_at": now})
                if n % 10 == 0:
                    rows.append({"event_id": event.id, "customer_id": customer_id,
                                 "order_ref": f"WD-{n:07d}-USD", "basis_amount": basis,
                                 "currency": "USD", "basis_date": owed_from, "attributes": {},
                                 "created_at": now, "updated_at": now})
            db.session.execute(insert(Entitlement), rows)
            db.session.commit()
        programme = programmes.create_programme(event, {
            "name_zh": "服务中断补偿", "name_en": "Service outage compensation",
            "kind": "compensation", "currency": "CNY", "mode": "proactive",
            "calculation_date": "2026-06-30", "low_value_threshold": "5.00",
            "low_value_action": "pay", "budget": "1000000.00",
            "terms_zh": "我们将赔偿您。", "terms_en": "We will compensate you.",
            "rules": {"amount": {"method": "percentage", "percentage": "10",
                                 "interest_rate": "3", "cap": "300"}}}, actor=actor)
        db.session.commit()
        return {"event_id": event.id, "programme_id": programme.id, "actor_id": actor.id,
                "seconds": time.perf_counter() - started}


# --- sections: each measures one step in a cold child process --------------------------------


def section_preview(url: str, instance: Path, seeded: dict[str, Any]) -> dict[str, Any]:
    """The preview of the whole programme (``portal.programmes.preview.preview``)."""
    from portal.extensions import db
    from portal.programmes.models import Programme
    from portal.programmes.preview import preview

    app = _app(url, instance)
    with app.app_context():
        programme = db.session.get(Programme, seeded["programme_id"])
        started = time.perf_counter()
        outcome = preview(programme)
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "customers": outcome.customers,
                "eligible": outcome.eligible_count,
                "total": str(outcome.total), "median": str(outcome.median),
                "sha256": outcome.amounts_sha256}


def section_signoff(url: str, instance: Path, seeded: dict[str, Any]) -> dict[str, Any]:
    """Ask legal (the digests and totals computed once more), legal approves (the binding
    recomputed by the decision handler), and ``binding_holds`` once more, as case generation
    does: the programme is left approved for the sections after this one."""
    from portal.accounts import Role, User
    from portal.auth import services as auth
    from portal.extensions import db
    from portal.programmes import services as programmes
    from portal.programmes.models import Programme
    from portal.signoffs import services as signoffs

    app = _app(url, instance)
    with app.app_context():
        legal, _ = auth.create_user("bench-legal@example.com", "Bench Legal", Role.LEGAL,
                                    "bench-password-2026", must_change_password=False)
        actor = db.session.get(User, seeded["actor_id"])
        programme = db.session.get(Programme, seeded["programme_id"])
        started = time.perf_counter()
        request = programmes.request_signoff(programme, actor=actor, acknowledge_budget=True)
        db.session.commit()
        requested = time.perf_counter()
        signoffs.decide(request.id, "approved", "", actor=legal)
        db.session.commit()
        decided = time.perf_counter()
        holds = programmes.binding_holds(programme)
        finished = time.perf_counter()
        return {"seconds": finished - started, "request": requested - started,
                "decide": decided - requested, "binding": finished - decided,
                "holds": holds, "status": programme.status}


# Other parts add theirs here: name → (function(url, instance, seeded) → {"seconds": …}).
SECTIONS: dict[str, Callable[[str, Path, dict[str, Any]], dict[str, Any]]] = {
    "preview": section_preview,
    "signoff": section_signoff,
}


# --- orchestration ---------------------------------------------------------------------------


def _child(*args: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", *args]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [ln for ln in (proc.stdout or "").splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write((proc.stdout or "")[-3000:] + (proc.stderr or "")[-3000:])
        raise SystemExit(f"the {args[0]} child failed")
    return json.loads(lines[-1][len("RESULT "):])


def measure(backend: str, url: str, tmp: Path, customers: int,
            sections: list[str]) -> dict[str, Any]:
    instance = tmp / backend
    instance.mkdir()
    migrate(url, instance)
    print(f"[{backend}] seeding {customers:,} customers with entitlements …", flush=True)
    seeded = _child("seed", url, str(instance), str(customers))
    print(f"[{backend}] seeded in {seeded['seconds']:.0f} s", flush=True)
    results = {}
    for name in sections:
        results[name] = _child(name, url, str(instance), json.dumps(seeded))
        print(f"[{backend}] {name}: {results[name]['seconds']:.2f} s", flush=True)
    return {"backend": backend, "seeded": seeded, "sections": results}


def report(results: list[dict[str, Any]], customers: int, sections: list[str]) -> None:
    print(f"\nProgramme of {customers:,} customers; seconds per step against the target")
    head = f"{'step':<12}" + "".join(f"{r['backend']:>22}" for r in results) + f"{'target':>10}"
    print(head)
    print("-" * len(head))
    for name in sections:
        target = TARGETS.get(name)
        cells = ""
        for r in results:
            seconds = r["sections"][name]["seconds"]
            verdict = "" if target is None else (" PASS" if seconds < target else " FAIL")
            cells += f"{seconds:>17.2f}{verdict:>5}"
        print(f"{name:<12}{cells}{'' if target is None else f'< {target:.0f} s':>10}")
    print("-" * len(head))
    for r in results:
        p = r["sections"].get("preview")
        if p:
            print(f"{r['backend']}: preview of {p['customers']:,} customers, {p['eligible']:,} "
                  f"eligible, total {p['total']} CNY, median {p['median']}, amounts "
                  f"SHA-256 {p['sha256'][:16]}…")
        g = r["sections"].get("signoff")
        if g:
            print(f"{r['backend']}: sign-off asked in {g['request']:.2f} s, decided in "
                  f"{g['decide']:.2f} s, binding checked in {g['binding']:.2f} s: "
                  f"{'holds' if g['holds'] else 'BROKEN'}, programme {g['status']}")
    shas = {r["sections"]["preview"]["sha256"] for r in results if "preview" in r["sections"]}
    if len(shas) > 1:
        print("the databases computed DIFFERENT amount lists")
    elif len(results) > 1 and shas:
        print("both databases computed the same amount list, to the cent")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--database-url", help="measure this database only (migrated first)")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated, of: {', '.join(SECTIONS)}")
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.child:
        kind, url, instance, rest = args.child[0], args.child[1], Path(args.child[2]), \
            args.child[3]
        if kind == "seed":
            result = seed(url, instance, int(rest))
        else:
            result = SECTIONS[kind](url, instance, json.loads(rest))
        print("RESULT " + json.dumps(result, ensure_ascii=False))
        return 0

    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - SECTIONS.keys()
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="aftercare-bench-programme-"))
    results = []
    try:
        if args.database_url:
            name = "PostgreSQL" if args.database_url.startswith("postgres") else "SQLite"
            results.append(measure(name, args.database_url, tmp, args.customers, sections))
        for backend in ("sqlite", "postgresql"):
            if args.database_url or args.only not in (None, backend):
                continue
            if backend == "sqlite":
                results.append(measure("SQLite", f"sqlite:///{tmp / 'bench.db'}", tmp,
                                       args.customers, sections))
            else:
                with postgres_database(args.pg_admin_url) as url:
                    results.append(measure("PostgreSQL", url, tmp, args.customers, sections))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, args.customers, sections)
    print(f"\n(whole run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
