"""Measure a remediation programme against DESIGN.md ("Targets") and issue 14: 100,000
eligible customers — preview < 5 s, case generation < 60 s with flat memory, payout file
< 15 s, bank result import < 30 s, and totals that reconcile to the cent; on SQLite and
PostgreSQL, printed side by side.

Run from the checkout: ``.venv/bin/python bench/programme.py`` (about 10 minutes on a 2-core
machine). For SQLite (a temporary file) and PostgreSQL (a fresh database
``aftercare_bench_<pid>`` on postgresql://postgres@127.0.0.1:5432, dropped at the end), or
only the database given by ``--database-url`` (migrated first; it must hold no customers), it

1. migrates the database and, in a child process, seeds one event with ``--customers``
   customers and one entitlement each (every tenth customer two, one of them in USD so that
   it is left out), with bulk inserts of 5,000 rows, and a draft programme (10 % of the basis
   plus 3 % simple interest, a cap, a low-value threshold paid without asking). Bank details
   are sealed in the entitlements (every 20th customer has none: paid by the original
   method, so not in the bank batch), and every 50th customer confirmed an account of their
   own on the portal (``payout_details``, which wins);
2. runs each section of ``SECTIONS`` in order, each in its own child process (so each starts
   cold and its memory is its own), through the real services: ``preview``; ``signoff``
   (legal approves); ``generation`` (the job's work in-process, with the growth of the peak
   RSS: flat means < ``FLAT_MEMORY_MB``); ``batch`` (prepared by one finance user, released
   by another); ``payout_file`` (the pain.001 requested and rendered by the document
   pipeline's job function, XSD-validated); ``result_import`` (a bank CSV for every line, 1 %
   rejected, kept and applied by the job function); ``reconcile`` (the batch's and the
   programme's reconciliation, balanced to the cent);
3. prints a table: seconds per step, their share of the target (0.50x: half the time
   allowed), PASS/FAIL, the databases side by side and their ratio; then what each step did
   and any problem its checks found (a problem fails the step whatever its time).

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
# Seconds per section (DESIGN.md "Targets"); the others are timed without a target.
TARGETS = {"preview": 5.0, "generation": 60.0, "payout_file": 15.0, "result_import": 30.0}
# Flat memory: case generation's peak RSS may grow less than this, whatever the count (it
# works in chunks of 1,000; holding 100,000 rows' objects would take hundreds of MB).
FLAT_MEMORY_MB = 50.0
BENCH_EMAIL = "bench-programme@example.com"


def _app(url: str, instance: Path) -> Any:
    from portal import create_app

    return create_app({"SECRET_KEY": "bench-secret", "SQLALCHEMY_DATABASE_URI": url,
                       "REDIS_URL": f"unix://{instance / 'no-redis.sock'}",
                       "INSTANCE_PATH": str(instance), "IMPORT_DIR": str(instance),
                       "PASSWORD_METHOD": "pbkdf2:sha256:1000"})


# --- seeding ---------------------------------------------------------------------------------


def _sealed(customer_id: int, n: int) -> str:
    """A bank account sealed for the customer, as the entitlement import or the portal does."""
    from portal.customers import payout

    return payout.seal(customer_id, payout.BankAccount(
        f"客户 {n}", "中国工商银行", f"6222{n:012d}", False))


def seed(url: str, instance: Path, customers: int) -> dict[str, Any]:
    """One event, ``customers`` customers with entitlements (bulk), a draft programme."""
    from datetime import date, timedelta
    from decimal import Decimal

    from sqlalchemy import func, insert, select

    from portal.accounts import Role
    from portal.auth import services as auth
    from portal.customers import payout
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
            rows, confirmed = [], []
            for n in numbers:
                customer_id = ids[f"B{n:07d}"]
                basis = Decimal(rng.randint(1_000, 500_000)).scaleb(-2)
                owed_from = date(2025, 1, 1) + timedelta(days=rng.randint(0, 364))
                rows.append({"event_id": event.id, "customer_id": customer_id,
                             "order_ref": f"WD-{n:07d}", "basis_amount": basis,
                             "currency": "CNY", "basis_date": owed_from, "attributes": {},
                             "payout_sealed": _sealed(customer_id, n) if n % 20 else None,
                             "created_at": now, "updated_at": now})
                if n % 50 == 7:  # the customer confirmed a bank account on the portal
                    confirmed.append({"customer_id": customer_id, "method": payout.BANK,
                                      "sealed": _sealed(customer_id, n + 1),
                                      "confirmed_at": now})
                if n % 10 == 0:
                    rows.append({"event_id": event.id, "customer_id": customer_id,
                                 "order_ref": f"WD-{n:07d}-USD", "basis_amount": basis,
                                 "currency": "USD", "basis_date": owed_from, "attributes": {},
                                 "created_at": now, "updated_at": now})
            db.session.execute(insert(Entitlement), rows)
            if confirmed:
                db.session.execute(insert(payout.PayoutDetails), confirmed)
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
                "holds": holds, "status": programme.status,
                "problems": [] if holds and programme.status == "approved" else
                [f"binding {'holds' if holds else 'BROKEN'}, programme {programme.status}"]}


def section_generation(url: str, instance: Path, seeded: dict[str, Any]) -> dict[str, Any]:
    """Case generation as the job does it (``generation.start_generation``, then
    ``run_generation`` with ``uow.commit`` as the checkpoint, no RQ): the binding check, the
    count, the chunks. Timed, with the growth of the peak RSS (its high-water mark reset when
    generation starts where the kernel allows); then checked against the computation: one
    member per eligible customer, one approved case each, the case total to the cent, every
    case ref distinct, the programme running at 100 %."""
    from decimal import Decimal

    from sqlalchemy import func, select

    from bench.customer_import import reset_peak, rss_mb
    from portal import uow
    from portal.accounts import User
    from portal.cases.models import Case
    from portal.extensions import db
    from portal.programmes import generation, rules
    from portal.programmes.models import Programme, ProgrammeMember

    app = _app(url, instance)
    with app.app_context():
        programme_id = seeded["programme_id"]
        generation.start_generation(db.session.get(Programme, programme_id),
                                    actor=db.session.get(User, seeded["actor_id"]))
        db.session.commit()
        db.session.expire_all()
        reset = reset_peak()
        peak_before, _ = rss_mb()
        started = time.perf_counter()
        generation.run_generation(programme_id, checkpoint=uow.commit)
        seconds = time.perf_counter() - started
        peak_after, _ = rss_mb()

        db.session.expire_all()
        programme = db.session.get(Programme, programme_id)
        members = db.session.scalar(select(func.count(ProgrammeMember.id))
                                    .where(ProgrammeMember.programme_id == programme_id))
        cases, total, refs = db.session.execute(
            select(func.count(Case.id), func.sum(Case.approved_amount),
                   func.count(func.distinct(Case.ref)))
            .where(Case.programme_id == programme_id)).one()
        want_members = want_cases = 0
        want_total = Decimal("0.00")
        for row in rules.compute(programme):
            if generation.becomes_member(row):
                want_members += 1
            if row.eligible:
                want_cases += 1
                want_total += row.amount
        checks = [("status", programme.status, "running"),
                  ("progress", generation.progress_percent(programme), 100),
                  ("members", members, want_members), ("cases", cases, want_cases),
                  ("case total", Decimal(total or 0), want_total),
                  ("distinct case refs", refs, cases)]
        growth = peak_after - peak_before
        problems = [f"{what}: {got} (expected {want})" for what, got, want in checks
                    if got != want]
        if growth >= FLAT_MEMORY_MB:
            problems.append(f"peak RSS grew {growth:.1f} MB (flat: < {FLAT_MEMORY_MB:.0f} MB)")
        return {"seconds": seconds, "cases": cases, "members": members, "total": str(total),
                "peak_before_mb": peak_before, "peak_after_mb": peak_after,
                "growth_mb": growth, "peak_reset": reset, "problems": problems}


def _finance_users() -> tuple[Any, Any]:
    """Two finance users: one prepares, the other releases (maker–checker)."""
    from sqlalchemy import select

    from portal.accounts import Role, User
    from portal.auth import services as auth
    from portal.extensions import db

    users = []
    for n in (1, 2):
        email = f"bench-finance{n}@example.com"
        user = db.session.scalar(select(User).where(User.email == email))
        if user is None:
            user, _ = auth.create_user(email, f"Bench Finance {n}", Role.FINANCE,
                                       "bench-password-2026", must_change_password=False)
        users.append(user)
    return users[0], users[1]


def _batch(programme_id: int) -> Any:
    from sqlalchemy import select

    from portal.extensions import db
    from portal.payouts.models import PayoutBatch

    return db.session.scalar(select(PayoutBatch).where(PayoutBatch.programme_id == programme_id)
                             .order_by(PayoutBatch.id.desc()).limit(1))


def section_batch(url: str, instance: Path, seeded: dict[str, Any]) -> dict[str, Any]:
    """A bank-account batch of every payable case of the programme (``prepare_batch``: the
    sealed details copied per line), released by a second finance user."""
    from portal.extensions import db
    from portal.payouts import services as payouts

    app = _app(url, instance)
    with app.app_context():
        maker, checker = _finance_users()
        db.session.commit()
        started = time.perf_counter()
        batch = payouts.prepare_batch(programme_id=seeded["programme_id"], currency="CNY",
                                      method="bank", actor=maker)
        db.session.commit()
        prepared = time.perf_counter()
        payouts.release_batch(batch, actor=checker)
        db.session.commit()
        finished = time.perf_counter()
        return {"seconds": finished - started, "prepare": prepared - started,
                "release": finished - prepared, "ref": batch.ref, "lines": batch.line_count,
                "control_sum": str(batch.control_sum), "status": batch.status,
                "problems": [] if batch.status == "released" else [f"batch {batch.status}"]}


def section_payout_file(url: str, instance: Path, seeded: dict[str, Any]) -> dict[str, Any]:
    """The batch's pain.001 file: requested (``files.request_file``), then rendered by the
    document pipeline's job function called in-process (``documents.render_document_job``:
    the sealed details opened, the XML written, validated against the ISO schema, its rows
    and sum checked against the batch, stored)."""
    from portal import documents
    from portal.extensions import db
    from portal.payouts import files

    app = _app(url, instance)
    with app.app_context():
        maker, _checker = _finance_users()
        batch = _batch(seeded["programme_id"])
        started = time.perf_counter()
        row, _created = files.request_file(batch, format=files.PAIN001, actor=maker)
        db.session.commit()
        row_id = row.id
        digest = documents.render_document_job(files.PIPELINE.name, row_id)
        seconds = time.perf_counter() - started
        db.session.expire_all()
        row = db.session.get(files.PayoutFile, row_id)
        problems = [] if row.status == "done" and row.row_count == batch.line_count \
            and row.control_sum == batch.control_sum else \
            [f"file {row.status}: {row.error or ''} ({row.row_count} rows)"]
        return {"seconds": seconds, "status": row.status, "rows": row.row_count,
                "bytes": row.size, "sha256": digest or "", "problems": problems}


REJECT_EVERY = 100  # 1 % of the lines come back rejected (AC04: account closed)


def section_result_import(url: str, instance: Path, seeded: dict[str, Any]) -> dict[str, Any]:
    """The bank's result CSV for every line of the batch, 1 % rejected: kept
    (``results.start_result``), then applied by the job function in-process
    (``result_tasks.apply_result_job``: claimed, ``apply_result``, committed): the lines
    paid or rejected, a payment recorded per paid case, the batch closed. Building the CSV
    is not timed."""
    import io

    from sqlalchemy import select

    from portal.extensions import db
    from portal.payouts import result_tasks, results
    from portal.payouts.models import PayoutLine, PayoutResult

    app = _app(url, instance)
    with app.app_context():
        maker, _checker = _finance_users()
        batch = _batch(seeded["programme_id"])
        out = io.StringIO()
        out.write("end_to_end_id,status,amount,currency,bank_ref,reason\n")
        rejected = 0
        for n, (e2e, amount, currency) in enumerate(db.session.execute(
                select(PayoutLine.end_to_end_id, PayoutLine.amount, PayoutLine.currency)
                .where(PayoutLine.batch_id == batch.id).order_by(PayoutLine.id))):
            if n % REJECT_EVERY == 0:
                rejected += 1
                out.write(f"{e2e},rejected,{amount},{currency},BK{n},AC04\n")
            else:
                out.write(f"{e2e},paid,{amount},{currency},BK{n},\n")
        data = out.getvalue().encode()
        lines = n + 1
        started = time.perf_counter()
        result = results.start_result(batch, io.BytesIO(data), "bank-result.csv", actor=maker)
        db.session.commit()
        uploaded = time.perf_counter()
        result_tasks.apply_result_job(result.id)
        finished = time.perf_counter()
        db.session.expire_all()
        result = db.session.get(PayoutResult, result.id)
        checks = [("result", result.status, "done"),
                  ("paid", result.paid_count, lines - rejected),
                  ("rejected", result.rejected_count, rejected),
                  ("problems", len(result.problems), 0)]
        return {"seconds": finished - started, "upload": uploaded - started,
                "apply": finished - uploaded, "lines": lines, "paid": result.paid_count,
                "rejected": result.rejected_count, "bytes": len(data),
                "problems": [f"{what}: {got} (expected {want})" for what, got, want in checks
                             if got != want]}


def section_reconcile(url: str, instance: Path, seeded: dict[str, Any]) -> dict[str, Any]:
    """The batch's and the programme's reconciliation (``reconciliation.for_batch`` and
    ``for_programme``): balanced to the cent, paid + rejected + pending equal to what was
    expected and to the batch's control sum, a case payment behind every paid line, every
    member's amount in one bucket."""
    from portal.extensions import db
    from portal.payouts import reconciliation
    from portal.programmes.models import Programme

    app = _app(url, instance)
    with app.app_context():
        batch = _batch(seeded["programme_id"])
        programme = db.session.get(Programme, seeded["programme_id"])
        started = time.perf_counter()
        of_batch = reconciliation.for_batch(batch)
        of_programme = reconciliation.for_programme(programme)
        seconds = time.perf_counter() - started
        problems = []
        totals = {}
        for t in of_batch.totals:
            totals[t.currency] = {k: str(getattr(t, k)) for k in (
                "expected", "paid", "rejected", "pending", "payments", "control_sum")}
            totals[t.currency]["counts"] = t.counts
            if t.paid + t.rejected + t.pending != t.expected or not t.balanced:
                problems.append(f"batch {t.currency}: difference {t.difference}, payments "
                                f"{t.payments_difference}, control {t.control_difference}")
        if of_batch.finding_count:
            problems.append(f"batch: {of_batch.finding_count} line(s) behind a difference")
        members = {}
        for m in of_programme.members:
            members[m.currency] = {"members": str(m.members), "counts": m.counts,
                                   "buckets": {k: str(v) for k, v in m.buckets.items()}}
            if m.difference or m.payments_difference:
                problems.append(f"members {m.currency}: difference {m.difference}, payments "
                                f"{m.payments_difference}")
        if not of_programme.balanced and not problems:
            problems.append("the programme does not reconcile")
        return {"seconds": seconds, "totals": totals, "members": members,
                "balanced": of_batch.balanced and of_programme.balanced,
                "problems": problems}


# name → (function(url, instance, seeded) → {"seconds": …, "problems": […], …}), in order:
# each section leaves the database as the next one needs it.
SECTIONS: dict[str, Callable[[str, Path, dict[str, Any]], dict[str, Any]]] = {
    "preview": section_preview,
    "signoff": section_signoff,
    "generation": section_generation,
    "batch": section_batch,
    "payout_file": section_payout_file,
    "result_import": section_result_import,
    "reconcile": section_reconcile,
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


def _verdict(section: dict[str, Any], target: float | None) -> str:
    if section.get("problems"):
        return "FAIL"
    if target is None:
        return "" if "balanced" not in section else "PASS"
    return "PASS" if section["seconds"] < target else "FAIL"


def _cell(seconds: float, target: float | None, verdict: str) -> str:
    share = f"{seconds / target:.2f}x" if target else ""
    return f"{seconds:>8.2f} s {share:>6} {verdict:<4}"


def report(results: list[dict[str, Any]], customers: int, sections: list[str]) -> None:
    """The table: seconds per step, its share of the target (0.50x: half the time allowed)
    and PASS/FAIL, the databases side by side, their ratio; then what each step found."""
    print(f"\nProgramme of {customers:,} customers: seconds per step, share of the target, "
          f"verdict (a step fails too when its checks do)")
    names = [r["backend"] for r in results]
    ratio = len(results) == 2
    head = (f"{'step':<20}" + "".join(f"{n:>25}" for n in names)
            + (f"{names[1] + '/' + names[0]:>20}" if ratio else "") + f"{'target':>12}")
    print(head)
    print("-" * len(head))

    def row(label: str, cells: list[str], values: list[float], target: str) -> None:
        both = f"{values[1] / values[0]:>19.2f}x" if ratio and values[0] else \
            (" " * 20 if ratio else "")
        print(f"{label:<20}" + "".join(f"{c:>25}" for c in cells) + both + f"{target:>12}")

    row("seed (bulk)", [_cell(r["seeded"]["seconds"], None, "") for r in results],
        [r["seeded"]["seconds"] for r in results], "")
    for name in sections:
        target = TARGETS.get(name)
        found = [r["sections"][name] for r in results]
        row(name, [_cell(f["seconds"], target, _verdict(f, target)) for f in found],
            [f["seconds"] for f in found], f"< {target:.0f} s" if target else "")
        if name == "generation":
            row("  peak RSS growth",
                [f"{f['growth_mb']:>8.1f} MB {'':>6} "
                 f"{'PASS' if f['growth_mb'] < FLAT_MEMORY_MB else 'FAIL':<4}" for f in found],
                [max(f["growth_mb"], 0.1) for f in found], f"< {FLAT_MEMORY_MB:.0f} MB")
        if name == "reconcile":
            row("  to the cent", [f"{'balanced' if f['balanced'] else 'NOT balanced':>17} "
                                  f"{_verdict(f, None):<4}" for f in found],
                [0.0 for _ in found], "balanced")
    print("-" * len(head))
    for r in results:
        _details(r["backend"], r["sections"])
    shas = {r["sections"]["preview"]["sha256"] for r in results if "preview" in r["sections"]}
    if len(shas) > 1:
        print("the databases computed DIFFERENT amount lists")
    elif len(results) > 1 and shas:
        print("both databases computed the same amount list, to the cent")


def _details(backend: str, found: dict[str, dict[str, Any]]) -> None:
    """What each step did and found, in a line or two."""
    say = {
        "preview": lambda p: f"preview of {p['customers']:,} customers, {p['eligible']:,} "
        f"eligible, total {p['total']} CNY, median {p['median']}, amounts SHA-256 "
        f"{p['sha256'][:16]}…",
        "signoff": lambda g: f"sign-off asked in {g['request']:.2f} s, decided in "
        f"{g['decide']:.2f} s, binding checked in {g['binding']:.2f} s: "
        f"{'holds' if g['holds'] else 'BROKEN'}, programme {g['status']}",
        "generation": lambda g: f"generation: {g['members']:,} members, {g['cases']:,} cases "
        f"for {g['total']} CNY; peak RSS {g['peak_before_mb']:.1f} → {g['peak_after_mb']:.1f} "
        f"MB{'' if g['peak_reset'] else ' (peak not reset: the startup peak may hide growth)'}",
        "batch": lambda b: f"batch {b['ref']}: {b['lines']:,} lines, {b['control_sum']} CNY, "
        f"prepared in {b['prepare']:.2f} s, released in {b['release']:.2f} s",
        "payout_file": lambda f: f"pain.001: {f['rows'] or 0:,} transfers, "
        f"{(f['bytes'] or 0) / 1e6:.1f} MB, XSD-valid, {f['status']}",
        "result_import": lambda i: f"result CSV of {i['lines']:,} lines "
        f"({i['bytes'] / 1e6:.1f} MB): kept in {i['upload']:.2f} s, applied in "
        f"{i['apply']:.2f} s: {i['paid']:,} paid, {i['rejected']:,} rejected",
        "reconcile": _reconciled,
    }
    for name, section in found.items():
        print(f"{backend}: {say[name](section)}")
        for problem in section.get("problems", []):
            print(f"{backend}:   PROBLEM {name}: {problem}")


def _reconciled(r: dict[str, Any]) -> str:
    parts = []
    for currency, t in r["totals"].items():
        counts = t["counts"]
        parts.append(f"batch {currency}: expected {t['expected']} = paid {t['paid']} "
                     f"({counts.get('paid', 0):,}) + rejected {t['rejected']} "
                     f"({counts.get('rejected', 0):,}) + pending {t['pending']} "
                     f"({counts.get('pending', 0):,}); control sum {t['control_sum']}; "
                     f"case payments {t['payments']}")
    for currency, m in r["members"].items():
        buckets = ", ".join(f"{k} {v} ({m['counts'].get(k, 0):,})"
                            for k, v in sorted(m["buckets"].items()))
        parts.append(f"members {currency}: {m['members']} = {buckets}")
    return ("balanced to the cent" if r["balanced"] else "NOT balanced") + "; " + \
        "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--database-url", help="measure this database only (migrated first)")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated, in this order, each needing the ones before "
                             f"it: {', '.join(SECTIONS)}")
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
