"""Operations: /healthz and /readyz against a real database, Redis and real RQ workers'
heartbeats; /metrics behind its token, its counters moving; JSON log lines that carry the
request id and user id and no password, token or e-mail address."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Worker
from rq.utils import now, utcformat

from portal import create_app, documents, jobs, logs
from portal.accounts import Role
from portal.extensions import rq
from portal.main import cli as main_cli
from portal.main import tasks as main_tasks
from portal.ops import services
from tests.conftest import PASSWORD, make_config
from tests.mail_helpers import start_worker

TOKEN = "metrics-token-for-tests"
WORKER_START_SECONDS = 90  # a paused machine (see the brief) can hold a start that long


# --- health ----------------------------------------------------------------------------------

def _without_database(redis_url: str, tmp_path: Path) -> Flask:
    """An app whose database cannot be reached (not from app_factory, which empties it)."""
    return create_app(make_config("sqlite:////nonexistent/dir/x.db", redis_url, tmp_path))


def test_healthz_answers_without_asking_anything(redis_url: str, tmp_path: Path) -> None:
    client = _without_database(redis_url, tmp_path).test_client()
    response = client.get("/healthz", headers={"X-Request-ID": "lb-check-1"})
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Request-ID"] == "lb-check-1"


def test_a_request_id_is_made_when_none_or_an_odd_one_is_given(client) -> None:
    made = client.get("/healthz").headers["X-Request-ID"]
    odd = client.get("/healthz", headers={"X-Request-ID": "a b c" * 30}).headers["X-Request-ID"]
    assert len(made) == 32 and len(odd) == 32 and made != odd


def _workers(redis_url: str) -> list[Worker]:
    return Worker.all(connection=Redis.from_url(redis_url))


def _wait_for_worker(redis_url: str, queue: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WORKER_START_SECONDS
    while not any(queue in w.queue_names() for w in _workers(redis_url)):
        assert proc.poll() is None, f"the {queue} worker exited"
        assert time.monotonic() < deadline, f"no {queue} worker registered"
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def default_worker(app: Flask, redis_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """RQ's own ``rq worker`` for the default queue, in a process of its own, as deployed
    (``--worker-ttl 60``)."""
    rq_script = Path(sys.executable).parent / "rq"
    proc = subprocess.Popen([str(rq_script), "worker", "--url", redis_url, "--worker-ttl",
                             str(jobs.WORKER_TTL), "--name", "ops-test-default", "default"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_worker(redis_url, "default", proc)
        yield proc
    finally:
        _stop(proc)


@pytest.mark.integration
def test_ready_only_when_a_worker_of_each_queue_beats(app: Flask, client, redis_url: str,
                                                      database_url: str, tmp_path: Path,
                                                      default_worker) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {"status": "failing", "checks": {
        "database": "ok", "redis": "ok", "worker:default": "ok", "worker:mail": "failing"}}

    mail_worker = start_worker(make_config(database_url, redis_url, tmp_path))
    try:
        _wait_for_worker(redis_url, "mail", mail_worker)
        # the mailings worker registers with the short time to live /readyz relies on
        [mailer] = [w for w in _workers(redis_url) if "mail" in w.queue_names()]
        assert 0 < Redis.from_url(redis_url).ttl(mailer.key) <= jobs.WORKER_TTL + 60
        response = client.get("/readyz")
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == {"status": "ok", "checks": {
            "database": "ok", "redis": "ok", "worker:default": "ok", "worker:mail": "ok"}}
    finally:
        _stop(mail_worker)
    assert client.get("/readyz").get_json()["checks"]["worker:mail"] == "failing"


@pytest.mark.integration
def test_the_development_worker_beats_often_enough_for_readyz(app: Flask, redis_url: str,
                                                               database_url: str,
                                                               tmp_path: Path) -> None:
    """``make run``'s default worker (``flask devserver``) registers with the short time to
    live, as deployed: with RQ's default it beat every 405 s and /readyz said "failing"."""
    flask = [sys.executable, "-m", "flask", "--app",
             f"portal:create_app({{'INSTANCE_PATH': {str(tmp_path)!r}}})"]
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url}
    proc = subprocess.Popen(main_cli.default_worker_command(flask), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_worker(redis_url, "default", proc)
        [worker] = [w for w in _workers(redis_url) if "default" in w.queue_names()]
        assert 0 < Redis.from_url(redis_url).ttl(worker.key) <= jobs.WORKER_TTL + 60
    finally:
        _stop(proc)


def test_a_worker_whose_heartbeat_is_old_does_not_count(app: Flask, client) -> None:
    connection = rq.queue.connection
    worker = Worker([rq.get_queue("default")], connection=connection, name="ops-test-stale")
    worker.register_birth()
    try:
        connection.hset(worker.key, "last_heartbeat",
                        utcformat(now() - timedelta(seconds=90)))
        checks = client.get("/readyz").get_json()["checks"]
        assert checks["worker:default"] == "failing"
        connection.hset(worker.key, "last_heartbeat", utcformat(now()))
        checks = client.get("/readyz").get_json()["checks"]
        assert checks["worker:default"] == "ok"
    finally:
        worker.register_death()


def test_not_ready_when_the_database_cannot_be_reached(redis_url: str, tmp_path: Path) -> None:
    response = _without_database(redis_url, tmp_path).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "failing"
    assert response.get_json()["checks"]["redis"] == "ok"


def test_not_ready_when_redis_cannot_be_reached(app_factory, tmp_path: Path) -> None:
    app = app_factory(REDIS_URL=f"unix://{tmp_path / 'no-redis.sock'}")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {
        "database": "ok", "redis": "failing", "worker:default": "failing",
        "worker:mail": "failing"}


def test_a_redis_that_never_answers_makes_readyz_fail_within_seconds(app_factory,
                                                                     tmp_path: Path) -> None:
    """A Redis that accepts the connection and then says nothing (a hung server, a full
    network buffer) must not hold the load balancer's probe: the answer is 503 in seconds."""
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = tmp_path / "silent.sock"
    silent.bind(str(path))
    silent.listen(8)
    app = app_factory(REDIS_URL=f"unix://{path}")
    answers: list = []
    probe = threading.Thread(target=lambda: answers.append(app.test_client().get("/readyz")),
                             daemon=True)
    started = time.monotonic()
    try:
        probe.start()
        probe.join(timeout=15)
    finally:
        silent.close()
    assert answers, "/readyz still had not answered after 15 s"
    # A probe's own timeout is often 1-5 s (Kubernetes: 1 s): the check gives up before.
    assert time.monotonic() - started < services.CHECK_TIMEOUT_SECONDS + 1.5
    assert answers[0].status_code == 503
    assert answers[0].get_json()["checks"]["redis"] == "failing"


# --- metrics ---------------------------------------------------------------------------------

def _metrics(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for s in family.samples}


def _value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_without_a_configured_token_do_not_exist(client) -> None:
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 404


def test_metrics_refuse_a_missing_or_wrong_token(app_factory) -> None:
    client = app_factory(METRICS_TOKEN=TOKEN).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert b"aftercare_" not in response.data


@pytest.mark.integration
def test_metrics_count_requests_jobs_sign_in_failures_and_pdfs(app_factory, users,
                                                               run_worker) -> None:
    app = app_factory(METRICS_TOKEN=TOKEN)
    client = app.test_client()
    before = _metrics(client)
    for _ in range(3):
        client.get("/healthz")
    client.get("/no-such-page")
    client.post("/login", data={"email": users[Role.ADMIN].email, "password": "wrong-one"})
    with app.app_context():
        assert jobs.enqueue(main_tasks.reconcile_job, job_id="ops-test-reconcile")
        assert jobs.enqueue(documents.render_document_job, "no-such-pipeline", 1,
                            job_id="ops-test-failing")
        waiting = _metrics(client)
        assert _value(waiting, "aftercare_queue_depth", queue="default") == 2
        assert _value(waiting, "aftercare_redis_up") == 1
        run_worker()
        documents.write_pdf("<p>Hello</p>", "ops-test")
    after = _metrics(client)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("aftercare_request_seconds_count", endpoint="ops.healthz", status="2xx") == 3
    assert moved("aftercare_request_seconds_count", endpoint="none", status="4xx") == 1
    assert moved("aftercare_login_failures_total") == 1
    assert moved("aftercare_job_seconds_count", queue="default", result="ok") == 1
    assert moved("aftercare_job_seconds_count", queue="default", result="failed") == 1
    assert moved("aftercare_pdf_render_seconds_count") == 1
    assert _value(after, "aftercare_queue_depth", queue="default") == 0
    assert _value(after, "aftercare_queue_failed", queue="default") == 1
    # scrapes are not counted as requests
    assert not any(labels and dict(labels).get("endpoint") == "ops.metrics"
                   for _name, labels in after)


# --- logs ------------------------------------------------------------------------------------

@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """What the JSON handler writes, while a test's app has installed it."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    yield stream
    handler = logs.json_handler()
    if handler is not None:
        root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_log_lines_carry_the_request_and_user_and_no_secrets(app_factory, users,
                                                                 json_logs) -> None:
    app = app_factory(LOG_FORMAT="json")
    logs.json_handler().setStream(json_logs)
    client = app.test_client()
    admin = users[Role.ADMIN]
    wrong = "Wrong-password-123"
    client.post("/login", data={"email": admin.email, "password": wrong},
                headers={"X-Request-ID": "req-failed-login"})
    client.post("/login", data={"email": admin.email, "password": PASSWORD},
                headers={"X-Request-ID": "req-login"})
    client.get("/dashboard", headers={"X-Request-ID": "req-dashboard"})
    with app.test_request_context("/"):
        logging.getLogger("portal.test").warning(
            "could not reach %s", admin.email, extra={"token": "abc123secret",
                                                      "details": {"password": wrong}})

    lines = _lines(json_logs)
    requests = {line["request_id"]: line for line in lines if line["message"] == "request"}
    assert requests["req-failed-login"]["status"] == 200
    assert requests["req-failed-login"]["user_id"] is None
    assert requests["req-failed-login"]["endpoint"] == "auth.login"
    assert requests["req-dashboard"]["user_id"] == admin.id
    assert requests["req-dashboard"]["route"] == "/dashboard"
    assert {"time", "level", "logger", "duration_ms", "method"} <= requests["req-login"].keys()
    [warning] = [line for line in lines if line["logger"] == "portal.test"]
    assert warning["message"] == "could not reach [e-mail]"
    assert warning["token"] == "[masked]" and warning["details"] == {"password": "[masked]"}
    text = json_logs.getvalue()
    for secret in (admin.email, wrong, PASSWORD, "abc123secret", "@example.com"):
        assert secret not in text


def test_logs_stay_text_outside_production(app_factory, json_logs) -> None:
    app_factory()
    assert logs.json_handler() is None
    assert logs.json_wanted(app_factory(PORTAL_ENV="production", LOG_FORMAT=""))


def test_multiprocess_mode_adds_up_the_processes(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, values counted in other processes (gunicorn workers,
    work horses) reach the scrape of this one."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = "from portal import metrics; metrics.login_failed(); metrics.mail_sent()"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=120)
    scrape = ("import sys; from portal import metrics; "
              "sys.stdout.write(metrics.exposition([]).decode())")
    text = subprocess.run([sys.executable, "-c", scrape], env=env, check=True, timeout=120,
                          capture_output=True, text=True).stdout
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("aftercare_login_failures_total", ())] == 2
    assert samples[("aftercare_mailing_messages_total", (("result", "sent"),))] == 2


@pytest.mark.integration
def test_metrics_count_mailing_messages_and_reconciler_requeues(app, users, scenario, smtp,
                                                                run_worker, redis_url) -> None:
    from tests.test_mailings import add_customers, draft, start

    app.config["METRICS_TOKEN"] = TOKEN
    client = app.test_client()
    before = _metrics(client)
    event, notice = scenario
    app.config["MAILING_CHUNK_SIZE"] = 2
    people = add_customers(users, event, 4)
    smtp(refuse={people[3].email})
    start(users, draft(users, event, notice))
    Redis.from_url(redis_url).flushall()  # the two chunk jobs are lost
    assert jobs.reconcile_all(timedelta(0)) == 2
    run_worker()
    after = _metrics(client)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("aftercare_mailing_messages_total", result="sent") == 3
    assert moved("aftercare_mailing_messages_total", result="failed") == 1
    assert moved("aftercare_reconciler_requeued_total",
                 reconciler="portal.mailings.tasks.requeue_lost_chunks") == 2
    assert moved("aftercare_job_seconds_count", queue="mail", result="ok") == 2


def test_a_request_refused_by_csrf_is_logged_with_its_id(app_factory, json_logs) -> None:
    app = app_factory(LOG_FORMAT="json", WTF_CSRF_ENABLED=True)
    logs.json_handler().setStream(json_logs)
    response = app.test_client().post("/login", data={"email": "x@example.com",
                                                      "password": "p" * 12},
                                      headers={"X-Request-ID": "req-no-csrf"})
    assert response.status_code == 400
    assert response.headers["X-Request-ID"] == "req-no-csrf"
    [line] = [line for line in _lines(json_logs) if line["message"] == "request"]
    assert (line["request_id"], line["status"], line["endpoint"]) == (
        "req-no-csrf", 400, "auth.login")
    assert "x@example.com" not in json_logs.getvalue()
