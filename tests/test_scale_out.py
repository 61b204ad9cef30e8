"""The scale-out run (issue 16): two gunicorn portals on two ports, two mail workers, a default
worker and `rq cron`, all real processes on one PostgreSQL database and one Redis, in
production mode, and nginx with the shipped config in front of both portals. Driven
concurrently, then one portal and one mail worker are killed with SIGKILL mid-way: nothing is
lost, nothing is done twice, the survivors finish, nginx sends everything to the survivor.

Marked ``scaleout``; part of the default `make test`, so `.ci/run` (which runs `make test`
with a PostgreSQL ``DATABASE_URL``) runs it. On SQLite it is skipped: several processes
writing one SQLite file is not the production set-up. About a minute and a half on 2 cores.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email.parser import BytesHeaderParser
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from sqlalchemy import func, select

from portal import uow
from portal.accounts import Role, User
from portal.auth import services as auth
from portal.extensions import db

pytestmark = [pytest.mark.scaleout, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"
RECIPIENTS = 2_000
CASES = 40
LEASE_SECONDS = 5  # a silent chunk job's worker is presumed dead after this (120 s in prod)


def _bench() -> ModuleType:
    """bench/public_page.py's process handling (each process in its own group)."""
    spec = importlib.util.spec_from_file_location("bench_public_page_scaleout",
                                                  ROOT / "bench" / "public_page.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- HTTP


class Browser:
    """A signed-in staff member's browser against one portal: cookies kept by hand (the
    production cookies are Secure, which http.cookiejar would not send over plain HTTP to
    127.0.0.1), CSRF tokens read from the pages as a browser's form would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            for raw in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = raw.partition("=")
                value = rest.split(";", 1)[0]
                if "max-age=0" in raw.lower() or "expires=thu, 01 jan 1970" in raw.lower():
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
            return response.status, dict(response.getheaders()), text
        finally:
            conn.close()

    def csrf(self, path: str) -> str:
        status, _, page = self.request("GET", path)
        assert status == 200, (path, status)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def login(self, email: str) -> None:
        token = self.csrf("/login")
        status, headers, _ = self.request("POST", "/login", {
            "csrf_token": token, "email": email, "password": PASSWORD})
        assert status == 302, status
        assert "/login" not in headers.get("Location", "")


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    bench: ModuleType
    procs: Any
    env: dict[str, str]
    app_spec: str
    nginx_dir: Path  # nginx's workers run unprivileged when we are root: a folder they enter
    ports: dict[str, int] = field(default_factory=dict)
    named: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> None:
        self.named[name] = self.procs.start(name, argv, env=self.env, cwd=ROOT)

    def portal(self, name: str) -> None:
        self.ports[name] = self.bench.free_port()
        self.start(name, [sys.executable, "-m", "gunicorn", "-w", "2", "-b",
                          f"127.0.0.1:{self.ports[name]}", "--log-level", "warning",
                          self.app_spec])

    def flask(self, name: str, *args: str) -> None:
        self.start(name, [sys.executable, "-m", "flask", "--app", self.app_spec, *args])

    def nginx(self, directory: Path, snapshot: Path) -> None:
        """The shipped nginx config (bench/public_page.py's derivation of it) with both
        portals in its upstream, each with the shipped max_fails/fail_timeout."""
        binary = shutil.which("nginx", path=os.pathsep.join(
            [os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
        if binary is None:
            pytest.fail("nginx is not installed (`make install` installs it)")
        a, b = self.ports["portal-a"], self.ports["portal-b"]
        self.ports["nginx"] = self.bench.free_port()
        text = self.bench.nginx_config(directory, a, self.ports["nginx"],
                                       self.bench.free_port(), snapshot)
        text, count = re.subn(rf"(server\s+127\.0\.0\.1:){a}\b([^;]*;)",
                              lambda m: f"{m.group(0)}\n    {m.group(1)}{b}{m.group(2)}", text)
        assert count == 1 and "max_fails=" in text
        conf_dir = directory / "nginx"
        conf_dir.mkdir()
        conf = conf_dir / "nginx.conf"
        conf.write_text(text)
        argv = [binary, "-p", f"{conf_dir}/", "-c", str(conf), "-e", str(conf_dir / "error.log")]
        self.named["nginx"] = self.procs.start("nginx", [*argv, "-g", "daemon off;"])
        self.bench.wait_http(self.ports["nginx"], "/healthz", self.procs)

    def kill(self, name: str) -> None:
        """SIGKILL to the whole process group: a gunicorn master with its workers."""
        proc = self.named.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flask", "--app", self.app_spec, *args],
                              cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=300, check=False)

    def wait_ready(self, name: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        last = None
        while time.monotonic() < deadline:
            self.procs.check_alive()
            try:
                last = self.bench.get(self.ports[name], "/readyz")
                if last[0] == 200:
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.2)
        pytest.fail(f"{name} not ready within {seconds} s: {last}")


@pytest.fixture
def keys() -> dict[str, str]:
    """The production keys, shared by the test's own app and every process (one audit chain
    keyed by one HMAC key)."""
    return {name: secrets.token_hex(32) for name in (
        "SECRET_KEY", "AUDIT_HMAC_KEY", "AUDIT_SIGNING_KEY", "PAYOUT_DETAILS_KEY",
        "ERASURE_KEY", "VERIFICATION_KEY")}


@pytest.fixture
def cluster_app(app_factory, database_url: str, tmp_path: Path,
                keys: dict[str, str]) -> Iterator[Flask]:
    if not database_url.startswith("postgresql"):
        pytest.skip("the scale-out run needs PostgreSQL (DATABASE_URL=postgresql://…): "
                    "several portals and workers on one SQLite file is not a production "
                    "set-up")
    instance = tmp_path / "instance"
    instance.mkdir()
    app = app_factory(INSTANCE_PATH=str(instance), MAILING_CHUNK_SIZE=100,
                      MAILING_LEASE_SECONDS=LEASE_SECONDS, **keys)
    with app.app_context():
        yield app


@pytest.fixture
def cluster(cluster_app: Flask, database_url: str, redis_url: str, tmp_path: Path,
            keys: dict[str, str], smtp_server: dict[str, Any]) -> Iterator[Cluster]:
    bench = _bench()
    logs = tmp_path / "logs"
    logs.mkdir()
    instance = Path(cluster_app.instance_path)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(keys)
    env.update({"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                "PORTAL_ENV": "production", "LOG_FORMAT": "text",
                "PUBLIC_SNAPSHOT_DIR": str(instance / "public-snapshot"),
                "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_server["port"]),
                "MAILING_RATE_PER_SECOND": "0", "MAILING_CHUNK_SIZE": "100",
                "MAILING_LEASE_SECONDS": str(LEASE_SECONDS)})
    app_spec = f"portal:create_app({{'INSTANCE_PATH': {str(instance)!r}}})"
    procs = bench.Processes(logs)
    found = Cluster(bench, procs, env, app_spec,
                    Path(tempfile.mkdtemp(prefix="aftercare-scaleout-")))
    found.nginx_dir.chmod(0o755)
    try:
        yield found
    finally:
        procs.stop_all()
        shutil.rmtree(found.nginx_dir, ignore_errors=True)
        db.session.remove()


# --------------------------------------------------------------------------- data


def _seed(app: Flask) -> dict[str, Any]:
    """Staff, an event with 2,000 customers, a notice approved by legal (not published), and
    CASES approved cases, each made through the services (with their audit entries)."""
    from portal.cases import services as cases
    from portal.customers import services as customers
    from portal.notices import services as notices
    from portal.signoffs import services as signoffs
    from tests.notice_helpers import EN, ZH, make_event

    made = {}
    for email, role in (("agent@example.com", Role.AGENT), ("agent2@example.com", Role.AGENT),
                        ("legal@example.com", Role.LEGAL)):
        user, _ = auth.create_user(email, email.split("@")[0], role, PASSWORD,
                                   must_change_password=False)
        user.notify_by_email = False
        made[email] = user
    agent, agent2 = made["agent@example.com"], made["agent2@example.com"]
    event = make_event()
    people = [customers.create_customer(event, {
        "external_ref": f"S{i:05d}", "name": f"客户{i}", "email": f"c{i}@example.com",
        "locale": "en" if i % 3 == 0 else "zh_CN"}, actor=agent) for i in range(RECIPIENTS)]
    notice = notices.create_notice(event, audience="public", actor=agent, content={
        "zh_CN": {**ZH, "title": "横向扩展测试通知"}, "en": {**EN, "title": "Scale-out notice"}})
    request = notices.request_signoff(notice, actor=agent)
    signoffs.decide(request.id, "approved", "", actor=made["legal@example.com"])
    case_ids = []
    for n, customer in enumerate(people[:CASES]):
        case = cases.open_case(customer, cases.CaseInput(
            "refund", f"O-{n}", "100.00", "CNY", "service_outage", "", agent.id), actor=agent)
        cases.change_status(case, "start", actor=agent)
        cases.propose(case, actor=agent)
        cases.approve(case, actor=agent2)
        case_ids.append(case.id)
    uow.commit()
    return {"event_id": event.id, "notice_id": notice.id, "slug": notice.slug,
            "version_id": notice.latest_version.id, "case_ids": case_ids}


def _start_mailing(event_id: int, version_id: int) -> int:
    """What the agent's start does: recipient rows first, committed; then the chunk jobs."""
    from portal.events.models import Event
    from portal.mailings import audience, compose, services, tasks

    agent = db.session.scalar(select(User).where(User.email == "agent@example.com"))
    data = services.MailingInput(version_id, audience.Audience(), False,
                                 compose.DEFAULT_GREETINGS["zh_CN"],
                                 compose.DEFAULT_GREETINGS["en"])
    mailing = services.create_mailing(db.session.get(Event, event_id), data, actor=agent)
    chunks = services.start(mailing, actor=agent)
    uow.commit()
    assert tasks.queue_chunks(mailing.id, chunks)
    return mailing.id


def _progress(mailing_id: int) -> dict[str, int]:
    from portal.mailings import services

    db.session.remove()  # a fresh read of what the workers committed
    return services.progress_counts(mailing_id)


def _received(directory: Path) -> tuple[Counter[str], dict[str, set[str]]]:
    """Messages per envelope recipient, and the Message-IDs each got."""
    counts: Counter[str] = Counter()
    ids: dict[str, set[str]] = {}
    parser = BytesHeaderParser()
    for path in directory.glob("*.eml"):
        with path.open("rb") as fh:
            headers = parser.parse(fh)
        for to in headers.get_all("X-Envelope-To") or []:
            counts[to.strip()] += 1
            ids.setdefault(to.strip(), set()).add(str(headers["Message-ID"]).strip())
    return counts, ids


# --------------------------------------------------------------------------- the run


def test_two_portals_three_workers_survive_a_killed_portal_and_worker(
        cluster: Cluster, cluster_app: Flask, smtp_server: dict[str, Any]) -> None:
    from portal.cases.models import Case, CaseStatus, Payment
    from portal.mailings.models import Mailing, MailingRecipient, MailingStatus

    began = time.monotonic()
    seeded = _seed(cluster_app)
    seeded_in = time.monotonic() - began
    cluster.portal("portal-a")
    cluster.portal("portal-b")
    cluster.flask("mail-1", "mailings", "worker")
    cluster.flask("mail-2", "mailings", "worker")
    cluster.flask("default", "rq", "worker", "--worker-ttl", "60", "--with-scheduler",
                  "default")
    cluster.flask("cron", "rq", "cron")
    cluster.wait_ready("portal-a")
    cluster.wait_ready("portal-b")
    a, b = cluster.ports["portal-a"], cluster.ports["portal-b"]
    cluster.nginx(cluster.nginx_dir, Path(cluster_app.instance_path) / "public-snapshot")
    ready_in = time.monotonic() - began - seeded_in

    # 1. Publish on A (a real sign-in and a real POST with its CSRF token), read on B.
    staff_a = Browser(a)
    staff_a.login("agent@example.com")
    notice_page = f"/staff/notices/{seeded['notice_id']}"
    token = staff_a.csrf(notice_page)
    status, _, _ = staff_a.request("POST", f"{notice_page}/publish", {"csrf_token": token})
    published = time.monotonic()
    assert status == 302, status
    public_path = f"/notices/{seeded['slug']}?lang=en"
    seen_after = None
    while time.monotonic() - published < 5:
        code, _, page = cluster.bench.get(b, public_path)
        if code == 200 and b"Scale-out notice" in page:
            seen_after = time.monotonic() - published
            break
        time.sleep(0.02)
    assert seen_after is not None and seen_after < 1.0, seen_after

    # 2. A mailing of 2,000 drained by both mail workers; one of them killed at a quarter.
    mailing_id = _start_mailing(seeded["event_id"], seeded["version_id"])
    mail_began = time.monotonic()
    deadline = mail_began + 90
    while _progress(mailing_id)["sent"] < RECIPIENTS // 4:
        assert time.monotonic() < deadline, _progress(mailing_id)
        time.sleep(0.05)
    sent_at_kill = _progress(mailing_id)["sent"]
    cluster.kill("mail-1")
    killed_worker_at = time.monotonic() - mail_began

    # 3. Payments racing on both portals (two clerks on each), portal A killed mid-way.
    outcomes: dict[str, Counter[str]] = {"portal-a": Counter(), "portal-b": Counter()}
    posts_to_a = threading.Semaphore(0)
    lock = threading.Lock()
    errors: list[str] = []

    def clerk(name: str, port: int) -> None:
        try:
            pay_all(name, port)
        except Exception as exc:  # reported by the test, not lost in a thread
            errors.append(f"{name}: {exc!r}")
            if name.startswith("portal-a"):
                posts_to_a.release(CASES)

    def pay_all(name: str, port: int) -> None:
        browser = Browser(port)
        browser.login("agent@example.com" if name.endswith("1") else "agent2@example.com")
        for case_id in seeded["case_ids"]:
            portal = name.rsplit("-", 1)[0]
            try:
                token = browser.csrf(f"/cases/{case_id}")
                code, _, _ = browser.request("POST", f"/cases/{case_id}/pay", {
                    "csrf_token": token, "amount": "100.00",
                    "payout_ref": f"PAY-{case_id}"})
                result = str(code)
            except (OSError, http.client.HTTPException, AssertionError) as exc:
                if portal != "portal-a":
                    raise
                result = f"down:{type(exc).__name__}"
            with lock:
                outcomes[portal][result] += 1
            if portal == "portal-a":
                posts_to_a.release()

    clerks = [threading.Thread(target=clerk, args=(name, port), daemon=True)
              for name, port in (("portal-a-1", a), ("portal-b-1", b), ("portal-a-2", a),
                                 ("portal-b-2", b))]
    pay_began = time.monotonic()
    for thread in clerks:
        thread.start()
    for _ in range(CASES // 2):  # a quarter of A's posts done: A goes down, master and workers
        assert posts_to_a.acquire(timeout=120)
    cluster.kill("portal-a")
    for thread in clerks:
        thread.join(timeout=180)
        assert not thread.is_alive()
    assert errors == []
    pay_seconds = time.monotonic() - pay_began
    # nginx in front of both: with A gone, every request still answers (from B).
    through_nginx = Counter(cluster.bench.get(cluster.ports["nginx"], "/login")[0]
                            for _ in range(20))
    assert through_nginx == Counter({200: 20}), through_nginx

    # 4. The surviving mail worker and the reconciler (rq cron) finish the mailing.
    deadline = time.monotonic() + 150
    while True:
        found = _progress(mailing_id)
        if found["sent"] + found["failed"] >= RECIPIENTS and db.session.get(
                Mailing, mailing_id).status == MailingStatus.DONE:
            break
        assert time.monotonic() < deadline, (found, cluster.procs.tail("cron"))
        time.sleep(0.25)
    mail_seconds = time.monotonic() - mail_began
    time.sleep(0.5)  # the SMTP server writes its last file

    received, message_ids = _received(smtp_server["dir"])
    expected = {f"c{i}@example.com" for i in range(RECIPIENTS)}
    lost = expected - set(received)
    duplicates = {to: n for to, n in received.items() if n > 1}
    in_doubt = db.session.scalar(select(func.count(MailingRecipient.id)).where(
        MailingRecipient.mailing_id == mailing_id,
        MailingRecipient.last_error.like("in doubt%")))
    assert found["failed"] == 0 and found["sent"] == RECIPIENTS
    assert lost == set()
    assert set(received) == expected
    # The documented window: at most one duplicate per killed worker, the same message again
    # (same Message-ID), and only for a row recovered as in doubt.
    assert sum(n - 1 for n in duplicates.values()) <= 1
    assert all(len(message_ids[to]) == 1 for to in duplicates)
    assert len(duplicates) <= in_doubt
    # Split across both mail workers; the default worker ran rq cron's reconciler.
    chunk_jobs = {name: cluster.procs.tail(name, 100_000).count(": mail: portal.mailings.tasks.")
                  for name in ("mail-1", "mail-2")}
    assert all(chunk_jobs.values()), chunk_jobs
    assert "reconcile_job" in cluster.procs.tail("default", 100_000)

    # Every case paid exactly once, the approved amount; every refusal a clean 4xx.
    payments = db.session.execute(select(Payment.case_id, func.count(Payment.id),
                                         func.sum(Payment.amount))
                                  .group_by(Payment.case_id)).all()
    assert sorted(case_id for case_id, _, _ in payments) == sorted(seeded["case_ids"])
    assert all(n == 1 and total == Decimal("100.00") for _, n, total in payments)
    statuses = db.session.scalars(select(Case.status).where(
        Case.id.in_(seeded["case_ids"]))).all()
    assert set(statuses) == {CaseStatus.PAID}
    answers = outcomes["portal-a"] + outcomes["portal-b"]
    assert not [code for code in answers if code.startswith("5")], (
        outcomes, cluster.procs.tail("portal-a", 80), cluster.procs.tail("portal-b", 80))
    refused = {code for code in answers if code.startswith("4")}
    assert refused <= {"403", "409", "422"}, answers
    assert answers["302"] <= CASES  # a success answered is a payment made
    assert sum(n for code, n in outcomes["portal-a"].items() if code.startswith("down")) > 0

    # B is still ready (the survivors beat); the audit chain written by every process holds.
    assert cluster.bench.get(b, "/readyz")[0] == 200
    verified = cluster.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    print(f"\nscale-out run: seed {seeded_in:.1f} s, both portals ready in {ready_in:.1f} s; "
          f"public page on B {seen_after * 1000:.0f} ms after the publish on A; "
          f"mailing {RECIPIENTS} in {mail_seconds:.1f} s (worker killed at {sent_at_kill} "
          f"sent, {killed_worker_at:.1f} s), chunk jobs per worker {chunk_jobs}, lost {len(lost)}, "
          f"duplicates "
          f"{sum(n - 1 for n in duplicates.values())}, in doubt {in_doubt}; payments "
          f"{len(payments)} of {CASES} cases paid once in {pay_seconds:.1f} s, answers A "
          f"{dict(outcomes['portal-a'])} B {dict(outcomes['portal-b'])}; through nginx after "
          f"the kill {dict(through_nginx)}; "
          f"{verified.stdout.strip().splitlines()[0]}; total {time.monotonic() - began:.1f} s")
