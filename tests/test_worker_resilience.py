"""The mail worker and the development supervisor outlive the loss of what they depend on,
tested with real processes: a private redis-server that is killed and started again, and a
supervised child that is killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.accounts import Role
from portal.extensions import db
from portal.mailings import services as mailings
from portal.mailings import tasks
from portal.mailings.cli import make_worker
from portal.mailings.models import Mailing, MailingRecipient, MailingStatus, RecipientStatus
from portal.main.supervisor import Supervisor
from tests.mail_helpers import recipients_received, start_server, start_worker
from tests.notice_helpers import make_event, make_notice
from tests.notice_helpers import publish as publish_notice
from tests.test_mailings import add_customers, draft

pytestmark = pytest.mark.integration


def start_redis(directory: Path) -> subprocess.Popen[bytes]:
    sock = directory / "redis.sock"
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", "0",
                             "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
                             "--dir", str(directory)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("redis-server did not start")
        time.sleep(0.02)
    return proc


def wait_until(check, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def stops_within(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_the_mail_worker_waits_for_redis_and_works_again_after_a_restart(
        app_factory, users, database_url, tmp_path) -> None:
    from tests.conftest import make_config

    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = start_redis(redis_dir)
    controller, handler, port = start_server(tmp_path / "mail")
    url = f"unix://{redis_dir / 'redis.sock'}"
    config = make_config(database_url, url, tmp_path / "worker", SMTP_HOST="127.0.0.1",
                         SMTP_PORT=port, MAILING_RATE_PER_SECOND=0)
    log = tmp_path / "worker.log"
    worker = start_worker(config, log=log)
    app = app_factory(REDIS_URL=url, SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    try:
        with app.app_context():
            event = make_event()
            notice = make_notice(users, event)
            publish_notice(notice, users)
            people = add_customers(users, event, 3)
            mailing = draft(users, event, notice)
            assert wait_until(lambda: b"Listening on mail" in log.read_bytes(), 30)
            redis.kill()  # Redis goes away under the idle worker …
            redis.wait()
            time.sleep(3)
            assert worker.poll() is None, log.read_text()
            redis = start_redis(redis_dir)  # … and comes back, empty
            chunks = mailings.start(mailing, actor=users[Role.AGENT])
            db.session.commit()  # as the view's boundary does, before the chunks are queued
            assert tasks.queue_chunks(mailing.id, chunks)

            def finished() -> bool:
                db.session.expire_all()
                return db.session.get(Mailing, mailing.id).status == MailingStatus.DONE

            assert wait_until(finished), log.read_text()
            assert worker.poll() is None
            assert recipients_received(handler.directory) == Counter(
                {c.email: 1 for c in people})
            assert db.session.scalar(select(func.count(MailingRecipient.id)).where(
                MailingRecipient.status == RecipientStatus.SENT)) == 3
        worker.terminate()  # SIGTERM after the restart ends it within seconds, not a minute
        assert stops_within(worker, 10) and worker.returncode == 0, log.read_text()
    finally:
        if worker.poll() is None:  # an assertion failed: never wait for it, or leak Redis
            worker.kill()
        worker.wait()
        redis.kill()
        redis.wait()
        controller.stop()


def test_a_stopping_worker_does_not_wait_for_its_command_thread(app) -> None:
    """The race behind a worker that ignored SIGTERM for a minute: its command thread had
    read the UNSUBSCRIBE reply before it was told to stop, and waited for a new
    subscription while RQ's teardown waited for the thread."""
    worker = make_worker(app)
    worker.subscribe()
    worker.pubsub.unsubscribe()
    assert wait_until(lambda: not worker.pubsub.subscribed, 10)  # the thread read the reply
    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
    started = time.monotonic()
    stopping.start()
    stopping.join(10)
    assert not stopping.is_alive() and time.monotonic() - started < 3


SLEEPER = (sys.executable, "-c", "import time; time.sleep(600)")


def test_the_supervisor_restarts_a_child_that_stopped_and_leaves_the_others_running() -> None:
    supervisor = Supervisor(dict(os.environ), min_wait=0.1)
    worker = supervisor.spawn("mail worker", *SLEEPER)
    web = supervisor.spawn("web", *SLEEPER)
    web_pid, worker_pid = web.proc.pid, worker.proc.pid
    try:
        os.killpg(worker_pid, signal.SIGKILL)
        worker.proc.wait()
        assert wait_until(lambda: supervisor.check() == [worker], 10)
        assert worker.proc.pid != worker_pid and worker.proc.poll() is None
        assert worker.exit_codes == [-signal.SIGKILL] and worker.restarts == 1
        assert web.proc.pid == web_pid and web.proc.poll() is None
        # Stopping again right away doubles the wait before the next start.
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        assert supervisor.check() == [] and worker.wait == pytest.approx(0.2)
        assert wait_until(lambda: supervisor.check() == [worker], 10)
        assert worker.restarts == 2 and web.proc.pid == web_pid
    finally:
        supervisor.stop()
    assert worker.proc.poll() is not None and web.proc.poll() is not None
