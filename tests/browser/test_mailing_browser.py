"""A mailing in a real browser: the agent composes it (the audience count follows the filters),
previews it as two customers, sends a test to themself, sends it, and watches the progress bar
climb to 100% while a real mail worker process sends through a real SMTP server."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from portal.accounts import Role
from portal.customers import services as customers
from tests.browser.helpers import path_of, sign_in, url_path, wait_for_htmx
from tests.browser.test_notice_flow_browser import sign_in as sign_in_in_chinese
from tests.conftest import make_config
from tests.mail_helpers import recipients_received, start_server, start_worker
from tests.notice_helpers import make_event, make_notice, publish

pytestmark = pytest.mark.browser
STALL_SECONDS = 15


def watch_progress(page: Page, percent: Locator, worker: subprocess.Popen[bytes]) -> set[int]:
    """The percentages the page shows until it reads 100%. Waits as long as the worker makes
    progress (a slow machine only takes longer); fails once the figure has not moved for
    STALL_SECONDS, or when the worker stopped with an error, saying which."""
    seen: set[int] = set()
    moved_at = time.monotonic()
    while True:
        value = int(percent.inner_text().rstrip("%"))
        if value not in seen:
            seen.add(value)
            moved_at = time.monotonic()
        if value == 100:
            return seen
        exit_code = worker.poll()
        assert exit_code in (None, 0), f"the mail worker stopped with {exit_code} at {seen}"
        stalled = time.monotonic() - moved_at
        assert stalled < STALL_SECONDS, f"no progress for {stalled:.0f} s (seen {sorted(seen)})"
        page.wait_for_timeout(100)


def test_compose_preview_send_and_watch_progress(new_page, users, database_url, redis_url,
                                                 tmp_path: Path) -> None:
    event = make_event(title="Checkout outage")
    event_id = event.id
    notice = make_notice(users, event)
    publish(notice, users)
    people = [customers.create_customer(event, {
        "external_ref": f"K{i:02d}", "name": f"Customer {i}" if i % 3 == 1 else f"客户{i}",
        "email": f"k{i}@example.com", "locale": "en" if i % 3 == 1 else "zh_CN",
        "tags": "vip"}, actor=users[Role.AGENT]) for i in range(12)]
    emails = [c.email for c in people]
    english = [c for c in people if c.locale == "en"]
    first_en_name = english[0].name
    controller, _handler, port = start_server(tmp_path / "mail")
    try:
        agent = new_page(locale="en-US")
        sign_in(agent, users[Role.AGENT].email)
        agent.goto(f"/events/{event_id}")
        agent.get_by_role("link", name="Mailings", exact=True).click()
        agent.get_by_role("link", name="New mailing", exact=True).click()
        expect(agent).to_have_url(url_path(f"/mailings/event/{event_id}/new"))
        audience = agent.locator("#audience")
        expect(audience.locator("li").first).to_have_text("12 will be e-mailed")
        agent.get_by_label("English", exact=True).check()
        expect(audience.locator("li").first).to_have_text("4 will be e-mailed")
        agent.get_by_label("English", exact=True).uncheck()
        expect(audience.locator("li").first).to_have_text("12 will be e-mailed")
        agent.get_by_role("button", name="Save draft", exact=True).click()
        expect(agent).to_have_url(re.compile(r"/mailings/\d+$"))
        detail_path = path_of(agent)

        # Preview as the first customer (Chinese), then as an English one.
        preview = agent.locator("#preview")
        expect(preview).to_contain_text("尊敬的客户0")
        expect(preview).to_contain_text("400-800-1234")
        agent.get_by_label("Preview as customer", exact=True).fill(first_en_name)
        agent.locator("#preview-matches").get_by_role(
            "link", name=re.compile(rf"^{re.escape(first_en_name)} ·")).click()
        expect(preview).to_contain_text(f"Dear {first_en_name}")
        expect(preview).to_contain_text("CRM outage")

        agent.get_by_role("button", name=re.compile(r"^Send a test to me")).click()
        expect(agent.locator(".flash")).to_contain_text("A test message is on its way")

        dialogs: list[str] = []

        def accept(dialog) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        agent.once("dialog", accept)
        agent.get_by_role("button", name="Send to 12 customers", exact=True).click()
        expect(agent.locator(".flash")).to_contain_text("started:")
        assert dialogs == ["Send this notice to 12 customers now?"]
        expect(agent).to_have_url(url_path(detail_path))
        percent = agent.locator("#mailing-progress [data-percent]")
        expect(percent).to_have_text("0%")

        # A real worker process sends, throttled to 4 a second, while the page polls.
        config = make_config(database_url, redis_url, tmp_path / "worker", SMTP_HOST="127.0.0.1",
                             SMTP_PORT=port, MAILING_RATE_PER_SECOND=4)
        worker = start_worker(config, burst=True)
        seen = watch_progress(agent, percent, worker)
        assert worker.wait(timeout=60) == 0
        assert 100 in seen and any(0 < v < 100 for v in seen), seen
        wait_for_htmx(agent)
        figures = agent.locator("#mailing-progress ul.figures li")
        expect(figures).to_have_text(["12 sent", "0 failed", "0 skipped", "0 remaining"])
        expect(agent.get_by_role("link", name="Delivery report (CSV)")).to_be_visible()
    finally:
        controller.stop()
    received = recipients_received(tmp_path / "mail")
    assert received == Counter({**dict.fromkeys(emails, 1), users[Role.AGENT].email: 1})


def test_a_repeat_needs_the_confirmation_and_the_preview_finds_anyone(
        new_page, users, tmp_path: Path) -> None:
    """The second mailing of a version asks to confirm with the count (refused without the
    tick, next to it), and the preview searches past the first ten customers."""
    from sqlalchemy import update

    from portal.extensions import db
    from portal.mailings import audience, compose
    from portal.mailings import services as mailings
    from portal.mailings.models import MailingRecipient, RecipientStatus
    from portal.models import utcnow

    event = make_event(title="Checkout outage")
    notice = make_notice(users, event)
    publish(notice, users)
    people = [customers.create_customer(event, {
        "external_ref": f"R{i:02d}", "name": f"Kunde {i}", "email": f"r{i}@example.com",
        "locale": "en", "tags": "early" if i < 9 else ""}, actor=users[Role.AGENT])
        for i in range(14)]
    last_ref, last_name = people[-1].external_ref, people[-1].name

    def mailing(tags: tuple[str, ...]):
        return mailings.create_mailing(event, mailings.MailingInput(
            notice.latest_version.id, audience.Audience(tags=tags), False,
            compose.DEFAULT_GREETINGS["zh_CN"], compose.DEFAULT_GREETINGS["en"]),
            actor=users[Role.AGENT])

    first = mailing(("early",))
    mailings.start(first, actor=users[Role.AGENT])
    db.session.execute(update(MailingRecipient).where(MailingRecipient.mailing_id == first.id)
                       .values(status=RecipientStatus.SENT, sent_at=utcnow()))
    again_id = mailing(()).id

    agent = new_page(locale="en-US")
    sign_in(agent, users[Role.AGENT].email)
    agent.set_viewport_size({"width": 1280, "height": 900})
    agent.goto(f"/mailings/{again_id}")
    warning = agent.locator("#repeat-message")
    expect(warning).to_contain_text("already sent to 9 of these 14 recipients")

    # The preview finds the fourteenth customer (the sample shows ten).
    matches = agent.locator("#preview-matches")
    expect(matches).not_to_contain_text(last_name)
    agent.get_by_label("Preview as customer", exact=True).fill(last_ref)
    expect(matches.get_by_role("link")).to_have_count(1)
    matches.get_by_role("link", name=re.compile(rf"^{re.escape(last_name)} ·")).click()
    expect(agent.locator("#preview")).to_contain_text(f"Dear {last_name}")
    agent.screenshot(path=str(tmp_path / "repeat-en-1280.png"), full_page=True)

    # Sending without the tick is refused next to the box; nothing started.
    agent.on("dialog", lambda dialog: dialog.accept())
    agent.get_by_role("button", name="Send to 14 customers", exact=True).click()
    expect(agent.locator("#repeat-error")).to_contain_text("Tick the box")
    expect(agent.get_by_label("Yes, send it again to them too")).not_to_be_checked()
    db.session.expire_all()
    assert db.session.get(type(first), again_id).status == "draft"
    agent.get_by_label("Yes, send it again to them too").check()
    agent.get_by_role("button", name="Send to 14 customers", exact=True).click()
    expect(agent.locator(".flash")).to_contain_text(f"Mailing {again_id} of {notice.ref} "
                                                    "started: 14 customers will be e-mailed.")

    # The same warning in Chinese, on a phone.
    zh = new_page(locale="zh-CN")
    sign_in_in_chinese(zh, users[Role.AGENT].email, zh=True)
    zh.set_viewport_size({"width": 390, "height": 844})
    third_id = mailing(())
    db.session.commit()
    zh.goto(f"/mailings/{third_id.id}")
    expect(zh.locator("#repeat-message")).to_contain_text("要再次发送吗？")
    zh.screenshot(path=str(tmp_path / "repeat-zh-390.png"), full_page=True)
    print("screenshots:", tmp_path)
