"""Personalised letters in a real browser, in English and in Chinese: an agent opens the
event's letters page, starts a run of the approved notice (confirming), watches the progress
partial poll itself to "done" while a real RQ worker renders the letters, and downloads the
PDF, whose text holds each customer's letter in their language.

Screenshots go to /tmp/letters-shots/ (outside the repository) to look at."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, expect

from portal.accounts import Role
from portal.extensions import db
from tests.browser.helpers import url_path
from tests.browser.test_my_work_browser import sign_in_as
from tests.notice_helpers import approve, make_notice, pdf_text_and_fonts
from tests.test_mailings import add_customers

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/letters-shots")
LOCALES = {"en": "en-US", "zh": "zh-CN"}
WORDS = {"en": ("Print the letters", "Download the letters (PDF)"),
         "zh": ("打印信函", "下载信函（PDF）")}


@pytest.fixture
def approved(app, users, tmp_path):
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    add_customers(users, notice.event, 3)
    approve(notice, users)
    db.session.commit()
    return notice.event_id


def _confirming(page: Page) -> None:
    def accept(dialog: Dialog) -> None:
        dialog.accept()
    page.once("dialog", accept)


@pytest.mark.parametrize("lang", LOCALES)
def test_an_agent_prints_the_letters_and_downloads_them(
        new_page, users, approved, run_worker, lang, tmp_path) -> None:
    SHOTS.mkdir(exist_ok=True)
    start_words, download_words = WORDS[lang]
    agent = new_page(locale=LOCALES[lang])
    sign_in_as(agent, users[Role.AGENT].email, lang)
    agent.goto(f"/events/{approved}")
    agent.locator(f"a[href$='/letters/events/{approved}']").first.click()
    expect(agent).to_have_url(url_path(f"/letters/events/{approved}"))
    agent.screenshot(path=str(SHOTS / f"{lang}-1-letters.png"), full_page=True)
    _confirming(agent)
    agent.get_by_role("button", name=start_words, exact=True).click()
    expect(agent).to_have_url(re.compile(r"/letters/runs/\d+$"))
    expect(agent.locator("#letter-run[hx-trigger]")).to_have_count(1)  # polling
    agent.screenshot(path=str(SHOTS / f"{lang}-2-queued.png"), full_page=True)
    run_worker()
    download = agent.get_by_role("link", name=download_words, exact=True)
    expect(download).to_be_visible()  # the partial polled itself to the finished run
    expect(agent.locator("#letters-bar")).to_have_attribute("value", "100")
    agent.screenshot(path=str(SHOTS / f"{lang}-3-done.png"), full_page=True)
    with agent.expect_download() as info:
        download.click()
    path = tmp_path / "letters.pdf"
    info.value.save_as(path)
    text, _fonts = pdf_text_and_fonts(path)
    assert "Dear 客户0" in text and "尊敬的 客户1" in text  # each in their language
    agent.goto(f"/letters/events/{approved}")
    expect(agent.locator("#letter-runs tbody tr")).to_have_count(1)
    agent.screenshot(path=str(SHOTS / f"{lang}-4-history.png"), full_page=True)
