"""Measure mailing delivery against DESIGN.md ("Targets"): 10,000 recipients through a real local
SMTP server at >= 200 messages/s with 2 workers; 0 lost and 0 duplicates after kill -9 of a
worker mid-batch.

Run from the checkout: ``.venv/bin/python bench/mailing.py`` (``--backend sqlite`` or
``postgresql`` for one database only). For each database it

1. migrates a fresh database (a temporary SQLite file; a database ``aftercare_bench_<pid>`` on
   postgresql://postgres@127.0.0.1:5432, dropped at the end), starts a private redis-server on
   a Unix socket, and seeds an event, a notice approved by legal and 10,000 customers (a third
   of them in English, one in ten with a case, so messages are personalised in both languages);
2. **throughput**: drafts and starts a mailing to all of them (recipient rows written, chunk
   jobs queued), then starts 2 ``mailings worker`` processes and the development SMTP server
   (aiosmtpd, one .eml file per message) and waits until every row is sent. It prints the
   messages per second over the whole run (worker start-up included) and between the first
   and the last message, with the send rate limit off (``MAILING_RATE_PER_SECOND=0``);
3. **kill -9**: a second mailing to the same 10,000; at 15, 35, 55 and 75 % sent it kills the
   oldest worker with SIGKILL and starts a replacement, and it runs the reconciler every second
   (as the cron job does; the lease is 3 s here instead of 120 s) until the mailing is done. It
   then counts,
   from the files the SMTP server kept, the recipients who got no message (lost) and the
   extra copies (duplicates), and how many rows were "in doubt" (sent again after the kill).

It is a measurement, not a test: it exits 0 whatever the numbers (non-zero only when it could
not measure). About three minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.databases import PG_ADMIN_URL, migrate, postgres_database  # noqa: E402
from tests.mail_helpers import free_port, recipients_received, start_worker  # noqa: E402

RECIPIENTS = 10_000
WORKERS = 2
TARGET_RATE = 200.0
LEASE_SECONDS = 3.0
# When a worker is killed with SIGKILL, as shares of the recipients sent.
KILL_POINTS = (0.15, 0.35, 0.55, 0.75)


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    sock = directory / "redis.sock"
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait()


@contextmanager
def smtp_server(directory: Path) -> Iterator[int]:
    """The development SMTP server in its own process, as in `make run`."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "portal.mail.devsmtp", "--port", str(port),
                             "--dir", str(directory)], cwd=ROOT, stdout=subprocess.DEVNULL)
    time.sleep(0.8)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait()


def seed(app: Any) -> tuple[int, int]:
    """An event, an approved notice and the customers (bulk-inserted); (event id, version id)."""
    from sqlalchemy import insert

    from bench import scenario
    from portal.cases.models import Case
    from portal.customers.models import Customer
    from portal.extensions import db
    from portal.models import utcnow

    with app.app_context():
        body_zh = "CRM 系统不可用，出金申请请致电 **400-800-1234**。\n\n" + "我们正在处理。" * 40
        body_en = "The CRM is down; for withdrawals call **400-800-1234**.\n\n" + (
            "We are working on it. " * 40)
        _agent, event, notice = scenario.approved_notice({
            "zh_CN": {"title": "CRM 系统故障通知", "body": body_zh},
            "en": {"title": "CRM outage", "body": body_en}})
        scenario.add_customers(event.id, RECIPIENTS)
        now = utcnow()
        ids = db.session.scalars(db.select(Customer.id).where(Customer.event_id == event.id)
                                 .order_by(Customer.id)).all()
        db.session.execute(insert(Case), [
            {"ref": f"C-2026-{n:05d}", "event_id": event.id, "customer_id": cid,
             "kind": "refund", "order_ref": f"O-{n}", "amount": "1280.50", "currency": "CNY",
             "reason": "service_outage", "description": "", "status": "new", "due_at": now,
             "created_at": now, "updated_at": now, "lock_version": 1}
            for n, cid in enumerate(ids[::10])])
        db.session.commit()
        return event.id, notice.latest_version.id


def start_mailing(app: Any, event_id: int, version_id: int) -> int:
    from portal import uow
    from portal.accounts import User
    from portal.events.models import Event
    from portal.extensions import db
    from portal.mailings import audience, compose, services, tasks

    with app.app_context():
        agent = db.session.scalar(db.select(User).where(User.email == "agent@bench.example"))
        data = services.MailingInput(version_id, audience.Audience(), False,
                                     compose.DEFAULT_GREETINGS["zh_CN"],
                                     compose.DEFAULT_GREETINGS["en"])
        mailing = services.create_mailing(db.session.get(Event, event_id), data, actor=agent)
        chunks = services.start(mailing, actor=agent)
        uow.commit()  # the agent's start, as its request would; then its chunks are queued
        assert tasks.queue_chunks(mailing.id, chunks)
        return mailing.id


def counts(app: Any, mailing_id: int) -> dict[str, int]:
    from portal.extensions import db
    from portal.mailings import services

    with app.app_context():
        found = services.progress_counts(mailing_id)
        db.session.remove()
        return found


def send_window(app: Any, mailing_id: int) -> tuple[float, int]:
    """Seconds between the first and the last message, and the rows sent again after a kill."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.mailings.models import MailingRecipient

    with app.app_context():
        first, last = db.session.execute(select(
            func.min(MailingRecipient.sent_at), func.max(MailingRecipient.sent_at)).where(
            MailingRecipient.mailing_id == mailing_id)).one()
        in_doubt = db.session.scalar(select(func.count(MailingRecipient.id)).where(
            MailingRecipient.mailing_id == mailing_id,
            MailingRecipient.last_error.like("in doubt%")))
        return (last - first).total_seconds(), int(in_doubt or 0)


def wait_until(app: Any, mailing_id: int, predicate: Any, timeout: float = 600,
               tick: Any = None) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        found = counts(app, mailing_id)
        if predicate(found):
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"mailing {mailing_id} stuck: {found}")
        if tick:
            tick()
        time.sleep(0.25)


@dataclass
class Result:
    backend: str
    wall_rate: float = 0.0
    send_rate: float = 0.0
    seconds: float = 0.0
    lost: int = -1
    duplicates: int = -1
    in_doubt: int = 0
    kill_at: list[int] = field(default_factory=list)  # messages sent when each kill came


def run_backend(backend: str, url: str, tmp: Path) -> Result:
    from portal import create_app

    result = Result(backend)
    instance = tmp / backend
    instance.mkdir()
    migrate(url, instance)
    with redis_server(instance) as redis_url:
        config = {"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url,
                  "INSTANCE_PATH": str(instance), "PASSWORD_METHOD": "pbkdf2:sha256:1000",
                  "MAILING_RATE_PER_SECOND": 0, "MAILING_LEASE_SECONDS": LEASE_SECONDS,
                  "SMTP_HOST": "127.0.0.1"}
        app = create_app(config)
        event_id, version_id = seed(app)
        emails = {f"c{i}@example.com" for i in range(RECIPIENTS)}

        # 1. throughput
        mail_dir = instance / "mail-throughput"
        with smtp_server(mail_dir) as port:
            config["SMTP_PORT"] = port
            mailing_id = start_mailing(app, event_id, version_id)
            began = time.monotonic()
            workers = [start_worker(config, burst=True, log=instance / "workers.log")
                       for _ in range(WORKERS)]
            wait_until(app, mailing_id, lambda c: c["sent"] + c["failed"] >= RECIPIENTS)
            result.seconds = time.monotonic() - began
            for w in workers:
                w.wait(timeout=60)
        window, _ = send_window(app, mailing_id)
        result.wall_rate = RECIPIENTS / result.seconds
        result.send_rate = RECIPIENTS / window if window else 0.0
        received = recipients_received(mail_dir)
        print(f"  [{backend}] throughput run: {sum(received.values())} messages kept by the "
              f"SMTP server for {len(received)} recipients", flush=True)

        # 2. kill -9 of a worker mid-batch
        mail_dir = instance / "mail-kill"
        with smtp_server(mail_dir) as port:
            config["SMTP_PORT"] = port
            app.config["SMTP_PORT"] = port
            mailing_id = start_mailing(app, event_id, version_id)
            workers = [start_worker(config, log=instance / "workers.log") for _ in range(WORKERS)]

            def reconcile() -> None:
                from portal import jobs, uow
                from portal.extensions import db

                with app.app_context():
                    jobs.reconcile_all(timedelta(0))
                    uow.commit()  # as `flask reconcile` does
                    db.session.remove()

            last = [time.monotonic()]

            def tick() -> None:
                if time.monotonic() - last[0] >= 1.0:
                    reconcile()
                    last[0] = time.monotonic()

            for share in KILL_POINTS:  # kill the oldest worker, start a fresh one
                before = wait_until(app, mailing_id,
                                    lambda c, share=share: c["sent"] >= RECIPIENTS * share,
                                    tick=tick)
                victim = workers.pop(0)
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                result.kill_at.append(before["sent"])
                workers.append(start_worker(config, log=instance / "workers.log"))
            wait_until(app, mailing_id, lambda c: c["sent"] + c["failed"] >= RECIPIENTS,
                       tick=tick)
            for w in workers:
                w.terminate()
                w.wait(timeout=30)
            time.sleep(0.5)
        received = recipients_received(mail_dir)
        result.lost = len(emails - set(received))
        result.duplicates = sum(n - 1 for n in received.values() if n > 1)
        _, result.in_doubt = send_window(app, mailing_id)
        with app.app_context():
            from portal.extensions import db

            db.engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is not installed (make install)")
    results = []
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-mail-") as name:
        tmp = Path(name)
        if args.backend in ("sqlite", "both"):
            print("SQLite …", flush=True)
            results.append(run_backend("sqlite", f"sqlite:///{tmp / 'bench.db'}", tmp))
        if args.backend in ("postgresql", "both"):
            print("PostgreSQL …", flush=True)
            with postgres_database(PG_ADMIN_URL) as url:
                results.append(run_backend("postgresql", url, tmp))
    load = os.getloadavg()[0]
    print(f"\nMailing {RECIPIENTS:,} recipients, {WORKERS} workers, chunks of 200, local aiosmtpd "
          f"(load {load:.2f})")
    print(f"{'database':<11} {'msg/s (wall)':>13} {'msg/s (send)':>13} {'seconds':>8} "
          f"{'target':>7} {'kills':>6} {'lost':>5} {'dups':>5} {'in doubt':>9}  kill -9")
    for r in results:
        verdict = "PASS" if r.wall_rate >= TARGET_RATE else "FAIL"
        target = "PASS" if r.lost == 0 and r.duplicates == 0 else "FAIL"
        window = "within" if r.lost == 0 and r.duplicates <= r.in_doubt <= len(r.kill_at) \
            else "OUTSIDE"
        print(f"{r.backend:<11} {r.wall_rate:>13.0f} {r.send_rate:>13.0f} {r.seconds:>8.1f} "
              f"{verdict:>7} {len(r.kill_at):>6} {r.lost:>5} {r.duplicates:>5} "
              f"{r.in_doubt:>9}  0 lost/0 dups: {target}; {window} the documented window")
    print("msg/s (wall): all recipients / time from starting the workers to the last row sent "
          "(start-up included); msg/s (send): between the first and the last message.")
    print("kill -9: one worker killed at each of "
          f"{', '.join(f'{p:.0%}' for p in KILL_POINTS)} sent and replaced; 'in doubt' rows "
          "were being sent when their worker died and went out again; a duplicate can only be "
          "one of them (the documented window: at most one per kill).")


if __name__ == "__main__":
    main()
