"""A public reader's browser in English and in Chinese: the notice page links the PDF of its
language, and following the link gives that language's PDF."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from portal.notices import publishing
from portal.notices import services as notices
from tests.notice_helpers import EN, ZH, make_notice, pdf_text_and_fonts, publish

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("SCREENSHOT_DIR", "/tmp/aftercare-shots"))


@pytest.mark.parametrize(("browser_locale", "mine", "other", "button"), [
    ("en-US", EN, ZH, "Download PDF"),
    ("zh-CN", ZH, EN, "下载 PDF"),
])
def test_public_page_links_the_pdf_of_its_language(
        app, new_page, console_errors, users, run_worker, tmp_path, browser_locale, mine, other,
        button) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    publish(notice, users)
    publishing.after_publication([notice.id])
    run_worker()
    slug = notice.slug
    SHOTS.mkdir(parents=True, exist_ok=True)

    visitor = new_page(locale=browser_locale)
    visitor.goto(f"/notices/{slug}")
    expect(visitor.get_by_role("heading", level=1)).to_have_text(mine["title"])
    link = visitor.get_by_role("link", name=button, exact=True)
    expect(link).to_be_visible()
    lang = "en" if browser_locale == "en-US" else "zh_CN"
    assert link.get_attribute("href") == f"/notices/{slug}.pdf?lang={lang}"
    for width in (1280, 390):
        visitor.set_viewport_size({"width": width, "height": 900})
        visitor.screenshot(path=SHOTS / f"public-notice-pdf-{lang}-{width}.png", full_page=True)
    received = {}

    def as_download(route) -> None:
        """The server's own answer to the browser's request, saved rather than shown in
        Chromium's PDF viewer (which keeps fetching after the test)."""
        answer = route.fetch()
        received.update(url=answer.url, status=answer.status, headers=answer.headers,
                        body=answer.body())
        route.fulfill(response=answer, headers={**answer.headers,
                                                "content-disposition": "attachment"})

    visitor.route("**/*.pdf?*", as_download)
    with visitor.expect_download():
        link.click()  # the browser follows the link, with its own Accept-Language
    assert received["status"] == 200
    assert received["url"].endswith(f"/notices/{slug}.pdf?lang={lang}")
    assert received["headers"]["content-type"].startswith("application/pdf")
    assert f"{notice.ref}-{lang}.pdf" in received["headers"]["content-disposition"]
    sha256 = received["headers"]["etag"].strip('"')
    assert sha256 == notices.signed_pdfs(notice.published_version_id)[lang].sha256
    path = tmp_path / f"followed-{lang}.pdf"
    path.write_bytes(received["body"])
    text = pdf_text_and_fonts(path)[0]
    assert mine["title"] in text and other["title"] not in text
    visitor.close()
    assert console_errors == []
