"""The job queues page in a real browser: an admin sees a failed job with its error, in
English and Chinese, confirms the retry in the browser's dialog and sees it queued again."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from portal.accounts import Role
from portal.extensions import rq
from tests.browser.helpers import sign_in
from tests.test_jobqueues import explode

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/backup")


def test_admin_retries_a_failed_job(new_page, users, run_worker) -> None:
    rq.get_queue("default").enqueue(explode, 12, job_id="render-pdf-12")
    run_worker()
    SHOTS.mkdir(exist_ok=True)
    page = new_page()
    sign_in(page, users[Role.ADMIN].email)
    page.get_by_role("link", name="Job queues").click()
    expect(page.get_by_role("heading", name="Job queues")).to_be_visible()
    expect(page.get_by_text("ValueError: renderer gave up on row 12")).to_be_visible()
    page.screenshot(path=str(SHOTS / "jobs-en.png"), full_page=True)

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("Job render-pdf-12 queued again on queue default.")).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)

    run_worker()  # fails again: back in the list
    zh = new_page()
    sign_in(zh, users[Role.ADMIN].email)
    zh.goto("/admin/jobs/?lang=zh_CN")
    expect(zh.get_by_role("heading", name="任务队列")).to_be_visible()
    expect(zh.get_by_role("button", name="重试")).to_be_visible()
    zh.screenshot(path=str(SHOTS / "jobs-zh.png"), full_page=True)
