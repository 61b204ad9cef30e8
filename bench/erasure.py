"""Measure erasure against DESIGN.md ("Targets"): 10,000 customers of an event erased in
< 60 s, and no sign-in slower than 1 s meanwhile.

Run from the checkout: ``.venv/bin/python bench/erasure.py``. For SQLite (a temporary file)
and PostgreSQL (a fresh database ``aftercare_bench_<pid>`` on
postgresql://postgres@127.0.0.1:5432, dropped at the end) it

1. migrates the database and, in a child process, builds a realistic closed event through the
   services: 10,000 customers imported from CSV, a published notice mailed to all of them
   (10,000 recipient rows), 1,000 cases whose descriptions and notes name their customer,
   300 timeline entries naming customers, a finished export archive; the event closed 400
   days ago;
2. starts a second child that signs in and out through the portal's own login and logout
   views (the Flask test client, the default password hashing) every 50 ms and times each
   request (both append to the audit chain);
3. after a few seconds of sign-ins on an idle database, runs a retention dry run, confirms
   it and times ``run_retention`` in a third child (the RQ job's body, called directly);
4. checks the result (every customer erased, one ``customer.erase`` entry each, no name left
   in the timeline, the audit chain intact) and prints the erasure time and the sign-in and
   sign-out times (idle and during the erasure: count, median, p99, max) with PASS/FAIL.

It is a measurement, not a test: it exits 0 whatever the numbers (non-zero only when it could
not measure), and removes everything it created. ``--portal DIR`` measures another checkout
of the portal (e.g. an export of an older commit) with this script.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.databases import PG_ADMIN_URL, migrate, postgres_database  # noqa: E402

CUSTOMERS = 10_000
CASES = 1_000
TIMELINE = 300
TARGET_SECONDS = 60.0
LOGIN_LIMIT_SECONDS = 1.0
IDLE_SECONDS = 3.0
LOGIN_EMAIL, LOGIN_PASSWORD = "bench-login@example.com", "bench-login-password-2026"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国玉珍志红春梅海燕文辉晓东雪琳"
FIRST = ("James", "Mary", "John", "Anna", "Lukas", "Léa", "Hugo", "Lucía", "Kenji", "Li")
LAST = ("Smith", "Garcia", "Müller", "Dubois", "Rossi", "Nguyen", "Tanaka", "Chen")


def _app(url: str, instance: Path, **extra: Any) -> Any:
    from portal import create_app

    return create_app({"SECRET_KEY": "bench-secret", "SQLALCHEMY_DATABASE_URI": url,
                       "REDIS_URL": f"unix://{instance / 'no-redis.sock'}",
                       "INSTANCE_PATH": str(instance), "IMPORT_DIR": str(instance), **extra})


def _people(rng: random.Random) -> list[tuple[str, str, str, str]]:
    rows = []
    for i in range(1, CUSTOMERS + 1):
        if rng.random() < 0.6:
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(2))
            email = f"user{i}@example.com"
        else:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            name = f"{first} {last}"
            email = f"{first.lower()}.{last.lower()}{i}@example.com"
        rows.append((f"EXT-{i:06d}", name, email, f"+86 138 {i // 10000:04d} {i % 10000:04d}"))
    return rows


# --- child: the event to erase ---------------------------------------------------------------


def seed(url: str, instance: Path) -> dict[str, Any]:
    import csv
    import io
    from datetime import timedelta

    from sqlalchemy import select

    from portal.accounts import Role
    from portal.auth import services as auth
    from portal.cases import services as cases
    from portal.customers import services as customers
    from portal.customers.models import Customer, ImportBatch
    from portal.events import services as events
    from portal.extensions import db
    from portal.lifecycle.models import ArchiveStatus, EventArchive
    from portal.mailings import audience, compose
    from portal.mailings import services as mailings
    from portal.models import utcnow
    from portal.notices import publishing
    from portal.notices import services as notices
    from portal.signoffs import services as signoffs

    rng = random.Random(11)
    app = _app(url, instance, PASSWORD_METHOD="pbkdf2:sha256:1000")
    started = time.perf_counter()
    with app.app_context():
        def user(email: str, role: Role) -> Any:
            return auth.create_user(email, email.split("@")[0], role, "bench-password-2026",
                                    must_change_password=False)[0]

        admin, agent, legal = (user("bench-admin@example.com", Role.ADMIN),
                               user("bench-agent@example.com", Role.AGENT),
                               user("bench-legal@example.com", Role.LEGAL))
        event = events.create_event(title="Erasure bench", kind="shutdown", severity="sev2",
                                    cause="business", actor=admin)
        people = _people(rng)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["external_ref", "name", "email", "phone"])
        writer.writerows(people)
        batch = customers.start_import(event, io.BytesIO(buf.getvalue().encode()),
                                       "customers.csv", actor=agent)
        customers.validate_import(batch.id)
        customers.confirm_import(db.session.get(ImportBatch, batch.id), actor=agent)
        customers.run_import(batch.id)
        notice = notices.create_notice(event, audience="public", content={
            "zh_CN": {"title": "停业通知", "body": "退款请致电 **400-800-1234**。"},
            "en": {"title": "Closing down", "body": "Refunds: call **400-800-1234**."}},
            actor=agent)
        request = notices.request_signoff(notice, actor=agent)
        signoffs.decide(request.id, "approved", "", actor=legal)
        publishing.publish(notice, actor=agent)
        mailing = mailings.create_mailing(event, mailings.MailingInput(
            version_id=notice.latest_version.id, audience=audience.Audience.from_dict({}),
            attach_pdf=False, greeting_zh=compose.DEFAULT_GREETINGS["zh_CN"],
            greeting_en=compose.DEFAULT_GREETINGS["en"]), actor=agent)
        mailings.start(mailing, actor=agent)
        customer_ids = list(db.session.scalars(select(Customer.id).where(
            Customer.event_id == event.id).order_by(Customer.id)))
        for n, customer_id in enumerate(rng.sample(customer_ids, CASES), start=1):
            customer = db.session.get(Customer, customer_id)
            case = cases.open_case(customer, cases.CaseInput(
                "refund", f"O-{n:05d}", "120.00", "CNY", "business_shutdown",
                f"{customer.name} ({customer.phone}) asks for the balance", None), actor=agent)
            cases.add_note(case, f"Called {customer.name}; confirm by mail to {customer.email}",
                           actor=agent)
        names = dict(db.session.execute(select(Customer.id, Customer.name).where(
            Customer.id.in_(rng.sample(customer_ids, TIMELINE)))).all())
        for name in names.values():
            events.add_timeline_entry(event, occurred_at=None,
                                      text=f"{name} called the hotline about the refund",
                                      actor=agent)
        archive_file = instance / "archives" / f"event-{event.id}-bench.zip"
        archive_file.parent.mkdir(parents=True, exist_ok=True)
        archive_file.write_bytes(b"PK\x05\x06" + b"\0" * 18)
        db.session.add(EventArchive(event_id=event.id, requested_by_id=admin.id,
                                    status=ArchiveStatus.DONE,
                                    requested_at=utcnow(), finished_at=utcnow(),
                                    path=str(archive_file.relative_to(instance)),
                                    sha256="0" * 64, size=22))
        event.status, event.closed_at = "closed", utcnow() - timedelta(days=400)
        auth.create_user(LOGIN_EMAIL, "Bench Login", Role.AGENT, LOGIN_PASSWORD,
                         must_change_password=False)
        db.session.commit()
        return {"event_id": event.id, "admin_id": admin.id, "seconds":
                time.perf_counter() - started}


# --- child: sign-ins while the erasure runs --------------------------------------------------


def logins(url: str, instance: Path, stop_file: Path) -> dict[str, Any]:
    """Sign in and out through the login and logout views until ``stop_file`` exists; times
    every request."""
    app = _app(url, instance, WTF_CSRF_ENABLED=False)  # the portal's own password hashing
    client = app.test_client()
    times: list[tuple[float, float]] = []
    failures = 0
    while not stop_file.exists():
        # Both write to the audit chain; a sign-out stuck behind the erasure counts too.
        for url, data in (("/login", {"email": LOGIN_EMAIL, "password": LOGIN_PASSWORD}),
                          ("/logout", {})):
            at = time.time()
            t = time.perf_counter()
            response = client.post(url, data=data)
            times.append((at, time.perf_counter() - t))
            if response.status_code != 302:
                failures += 1
        time.sleep(0.05)
    return {"times": times, "failures": failures}


# --- child: the erasure ----------------------------------------------------------------------


def erase(url: str, instance: Path, admin_id: int, event_id: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from portal import uow
    from portal.accounts import User
    from portal.audit import services as audit
    from portal.audit.models import AuditEntry
    from portal.customers.models import Customer
    from portal.events.models import TimelineEntry
    from portal.extensions import db
    from portal.lifecycle import retention
    from portal.lifecycle.models import RetentionRun

    app = _app(url, instance)
    with app.app_context():
        admin = db.session.get(User, admin_id)
        names = list(db.session.scalars(select(Customer.name).where(
            Customer.event_id == event_id)))
        run = retention.dry_run(actor=admin)
        retention.confirm_run(run, actor=admin)
        run_id = run.id
        uow.commit()  # the admin's confirmation, as its request would
        db.session.remove()
        started_at = time.time()
        t = time.perf_counter()
        retention.run_retention(run_id, batch_done=uow.commit)  # as its job runs it
        uow.commit()
        seconds = time.perf_counter() - t
        finished_at = time.time()
        run = db.session.get(RetentionRun, run_id)
        live = db.session.scalar(select(func.count(Customer.id)).where(
            Customer.event_id == event_id, Customer.erased_at.is_(None)))
        entries = db.session.scalar(select(func.count(AuditEntry.id)).where(
            AuditEntry.action == "customer.erase"))
        timeline = " ".join(db.session.scalars(select(TimelineEntry.text)))
        named = sum(1 for name in set(names) if name in timeline)
        t = time.perf_counter()
        chain = audit.verify_chain()
        verify_s = time.perf_counter() - t
        return {"seconds": seconds, "started_at": started_at, "finished_at": finished_at,
                "status": run.status, "error": run.error, "erased": run.erased_count,
                "live": live, "entries": entries, "names_in_timeline": named,
                "chain_ok": chain.ok, "chain_checked": chain.checked, "verify_s": verify_s}


# --- the parent ------------------------------------------------------------------------------


def _child(portal: Path, *args: str, background: bool = False) -> Any:
    command = [sys.executable, __file__, "--portal", str(portal), "--child", *args]
    if background:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return _result(subprocess.run(command, capture_output=True, text=True, check=False),
                   args[0])


def _result(proc: Any, what: str) -> dict[str, Any]:
    lines = [ln for ln in (proc.stdout or "").splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write((proc.stdout or "")[-3000:] + (proc.stderr or "")[-3000:])
        raise SystemExit(f"the {what} child failed")
    return json.loads(lines[-1][len("RESULT "):])


def measure(backend: str, url: str, tmp: Path, portal: Path) -> dict[str, Any]:
    instance = tmp / backend
    instance.mkdir()
    migrate(url, instance)
    print(f"[{backend}] seeding {CUSTOMERS:,} customers, {CASES:,} cases, a mailing …",
          flush=True)
    seeded = _child(portal, "seed", url, str(instance))
    print(f"[{backend}] seeded in {seeded['seconds']:.0f} s; erasing while signing in …",
          flush=True)
    stop = tmp / f"{backend}.stop"
    login_proc = _child(portal, "logins", url, str(instance), str(stop), background=True)
    try:
        time.sleep(IDLE_SECONDS)
        erased = _child(portal, "erase", url, str(instance), str(seeded["admin_id"]),
                        str(seeded["event_id"]))
        time.sleep(1.0)
    finally:
        stop.touch()
        out, err = login_proc.communicate(timeout=120)
    login = _result(subprocess.CompletedProcess(login_proc.args, login_proc.returncode, out,
                                                err), "logins")
    during = [took for at, took in login["times"]
              if at + took >= erased["started_at"] and at <= erased["finished_at"]]
    idle = [took for at, took in login["times"] if at + took < erased["started_at"]]
    return {"backend": backend, "erase": erased, "during": during, "idle": idle,
            "login_failures": login["failures"]}


def _stats(values: list[float]) -> str:
    if not values:
        return f"{'0':>6}{'-':>9}{'-':>9}{'-':>9}"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{len(values):>6}{statistics.median(values) * 1000:>9.0f}{p99 * 1000:>9.0f}"
            f"{max(values) * 1000:>9.0f}")


def report(results: list[dict[str, Any]]) -> None:
    print(f"\nErasure of {CUSTOMERS:,} customers of one event by a confirmed retention run "
          "(run_retention, the job's body), sign-ins and sign-outs through the views in "
          "parallel; their times in ms")
    head = (f"{'database':<11}{'erase s':>8}{'target':>8}  {'requests':<9}{'n':>6}"
            f"{'median':>9}{'p99':>9}{'max':>9}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['backend']:<11}{r['erase']['seconds']:>8.1f}{TARGET_SECONDS:>8.0f}  "
              f"{'idle':<9}{_stats(r['idle'])}")
        print(f"{'':<27}  {'erasing':<9}{_stats(r['during'])}")
    print("-" * len(head))
    for r in results:
        e = r["erase"]
        fast = "PASS" if e["seconds"] < TARGET_SECONDS else "FAIL"
        slowest = max(r["during"], default=0.0)
        logins_ok = "PASS" if r["during"] and slowest < LOGIN_LIMIT_SECONDS else "FAIL"
        correct = (e["status"] == "done" and e["erased"] == CUSTOMERS and e["live"] == 0
                   and e["entries"] == CUSTOMERS and e["names_in_timeline"] == 0
                   and e["chain_ok"] and r["login_failures"] == 0)
        print(f"{r['backend']}: erased {e['erased']:,} in {e['seconds']:.1f} s (target < "
              f"{TARGET_SECONDS:.0f} s) {fast}; slowest of {len(r['during'])} sign-ins/outs during "
              f"it {slowest * 1000:.0f} ms (target < {LOGIN_LIMIT_SECONDS * 1000:.0f} ms) "
              f"{logins_ok}; result {'correct' if correct else 'WRONG'} (run {e['status']}"
              f"{', ' + e['error'] if e['error'] else ''}; {e['live']} customers left, "
              f"{e['entries']:,} erase entries, {e['names_in_timeline']} names left in the "
              f"timeline, chain {'intact' if e['chain_ok'] else 'BROKEN'} over "
              f"{e['chain_checked']:,} entries, {r['login_failures']} failed sign-ins/outs)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--portal", type=Path, default=ROOT,
                        help="the checkout of the portal to measure (default: this one)")
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(args.portal.resolve()))
        kind, url, instance, *rest = args.child
        if kind == "seed":
            result = seed(url, Path(instance))
        elif kind == "logins":
            result = logins(url, Path(instance), Path(rest[0]))
        else:
            result = erase(url, Path(instance), int(rest[0]), int(rest[1]))
        print("RESULT " + json.dumps(result, ensure_ascii=False))
        return 0

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="aftercare-bench-erasure-"))
    results = []
    try:
        for backend in ("sqlite", "postgresql"):
            if args.only not in (None, backend):
                continue
            if backend == "sqlite":
                results.append(measure("SQLite", f"sqlite:///{tmp / 'bench.db'}", tmp,
                                       args.portal))
            else:
                with postgres_database(args.pg_admin_url) as url:
                    results.append(measure("PostgreSQL", url, tmp, args.portal))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results)
    print(f"\n(whole run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
