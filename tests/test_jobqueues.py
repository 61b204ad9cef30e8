"""The admin page of the job queues: only admins, a real failed job (queued to real Redis, run
by a real worker) listed with its error, retried through RQ's failed-job registry, audited."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from rq import Worker
from rq.registry import FailedJobRegistry
from rq.utils import now, utcformat
from sqlalchemy import select

from portal.accounts import Role
from portal.audit.models import AuditEntry
from portal.extensions import db, rq
from portal.i18n import LOCALE_COOKIE
from tests.test_page_language import foreign_words, visible_texts


def explode(row_id: int) -> None:
    """A job that always fails (run by the worker from this module)."""
    raise ValueError(f"renderer gave up on row {row_id}")


def explode_with(address: str) -> None:
    raise RuntimeError("no such mailbox")


def _fail(run_worker) -> None:
    queue = rq.get_queue("default")
    queue.enqueue(explode, 41, job_id="boom-41")
    queue.enqueue(explode_with, "li.lei@example.com", job_id="boom-mail")
    run_worker()
    assert FailedJobRegistry(queue=queue).count == 2


@pytest.mark.parametrize("role", [Role.AGENT, Role.LEGAL, Role.FINANCE])
def test_only_admins_see_the_queues(client, auth, role) -> None:
    assert client.get("/admin/jobs/").headers["Location"].startswith("/login")
    auth.login(role)
    assert client.get("/admin/jobs/").status_code == 403
    assert client.post("/admin/jobs/default/boom-41/retry").status_code == 403
    assert b"/admin/jobs/" not in client.get("/").data


def test_a_failed_job_is_listed_with_its_error(client, auth, run_worker) -> None:
    _fail(run_worker)
    auth.login(Role.ADMIN)
    page = client.get("/admin/jobs/").get_data(as_text=True)
    assert 'href="/admin/jobs/"' in page  # in the navigation
    assert "boom-41" in page and "explode" in page
    assert "ValueError: renderer gave up on row 41" in page
    assert "Traceback" not in page  # the error's last line only
    assert "<code>41</code>" in page
    # A job given anything but ids: its arguments are not shown.
    assert "boom-mail" in page and "RuntimeError: no such mailbox" in page
    assert "li.lei@example.com" not in page
    # Depth: nothing waiting, nothing running, two failed; no worker alive (the test's
    # worker ran the jobs and stopped).
    row = re.search(r"<code>default</code></th>(.*?)</tr>", page, re.S).group(1)
    assert re.findall(r"<td>(\d+)</td>", row) == ["0", "0", "2"]
    assert "its jobs wait until a worker runs" in row
    partial = client.get("/admin/jobs/", headers={"HX-Request": "true",
                                                  "HX-Target": "job-queues"})
    assert "<h1>" not in partial.get_data(as_text=True)


def test_the_page_reads_in_chinese(client, auth, run_worker) -> None:
    _fail(run_worker)
    auth.login(Role.ADMIN)
    client.set_cookie(LOCALE_COOKIE, "zh_CN")
    page = client.get("/admin/jobs/").get_data(as_text=True)
    assert "任务队列" in page and "重试" in page and "失败任务" in page
    english = [w for text in visible_texts(page, "zh") for w in foreign_words("zh", text)]
    assert english == []


def test_retry_requeues_the_job_and_is_audited(client, auth, run_worker) -> None:
    _fail(run_worker)
    auth.login(Role.ADMIN)
    queue = rq.get_queue("default")
    answer = client.post("/admin/jobs/default/boom-41/retry", follow_redirects=True)
    assert "Job boom-41 queued again on queue default." in answer.get_data(as_text=True)
    assert queue.job_ids == ["boom-41"]
    assert FailedJobRegistry(queue=queue).count == 1
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "job.retry")).all()
    assert [(e.subject_type, e.subject_id) for e in entries] == [("job", "boom-41")]
    assert entries[0].actor_id is not None

    # Not failed any more: a second retry is refused, changes nothing, writes nothing.
    again = client.post("/admin/jobs/default/boom-41/retry", follow_redirects=True)
    assert "is not among the failed jobs" in again.get_data(as_text=True)
    assert db.session.scalar(select(db.func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "job.retry")) == 1
    # An unknown queue too.
    other = client.post("/admin/jobs/nope/boom-mail/retry", follow_redirects=True)
    assert "is not among the failed jobs" in other.get_data(as_text=True)

    run_worker()  # the retried job really runs again (and fails again)
    assert FailedJobRegistry(queue=queue).count == 2


def test_retry_needs_the_csrf_token(app_factory, users, run_worker) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    client = app.test_client()
    with app.app_context():
        rq.get_queue("default").enqueue(explode, 5, job_id="boom-5")
        run_worker()
    login_page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page)
    assert token
    client.post("/login", data={"email": users[Role.ADMIN].email,
                                "password": "correct-horse-battery",
                                "csrf_token": token.group(1)})
    assert client.post("/admin/jobs/default/boom-5/retry").status_code == 400
    with app.app_context():
        assert FailedJobRegistry(queue=rq.get_queue("default")).count == 1


def test_the_page_counts_the_live_workers_of_each_queue(client, auth) -> None:
    """A worker that beat within the minute counts; one whose last beat is older does not
    (the same rule as /readyz)."""
    connection = rq.queue.connection
    live = Worker([rq.get_queue("mail")], connection=connection, name="jobqueues-live")
    stale = Worker([rq.get_queue("default")], connection=connection, name="jobqueues-stale")
    for worker in (live, stale):
        worker.register_birth()
    connection.hset(stale.key, "last_heartbeat", utcformat(now() - timedelta(seconds=90)))
    try:
        auth.login(Role.ADMIN)
        page = client.get("/admin/jobs/").get_data(as_text=True)
        mail = re.search(r"<code>mail</code></th>(.*?)</tr>", page, re.S).group(1)
        default = re.search(r"<code>default</code></th>(.*?)</tr>", page, re.S).group(1)
        assert re.findall(r"<td>(\d+)</td>", mail) == ["0", "0", "0", "1"]
        assert "its jobs wait until a worker runs" in default
    finally:
        for worker in (live, stale):
            worker.register_death()
