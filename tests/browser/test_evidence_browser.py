"""Evidence on the staff case page in a real browser: an agent attaches a phone photo and a
PDF, sees the photo's thumbnail (drawn by the browser under the CSP), an SVG is refused next to
the field; the page read in English and Chinese, at full width and at 390 px."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from portal.accounts import Role
from portal.main.demo_files import receipt_pdf
from tests.browser.helpers import sign_in
from tests.case_helpers import make_case

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-evidence")


def photo(path: Path) -> Path:
    image = Image.new("RGB", (900, 1200), "white")
    for y in range(0, 1200, 60):
        image.paste((30, 90, 160), (80, y, 820, y + 20))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (31.0, 14.0, 2.5), 3: "E", 4: (121.0, 28.0, 9.1)}
    image.save(path, "JPEG", exif=exif)
    return path


def thumbnail_drawn(page: Page) -> bool:
    image = page.locator("#evidence img").first
    return image.evaluate("img => img.complete && img.naturalWidth > 0")


def fits(page: Page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_agent_attaches_evidence_and_sees_the_thumbnail(new_page, users, tmp_path) -> None:
    case = make_case(users)
    case_id = case.id
    SHOTS.mkdir(exist_ok=True)
    (tmp_path / "statement.pdf").write_bytes(receipt_pdf())
    (tmp_path / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')

    agent = new_page(locale="en-US")
    sign_in(agent, users[Role.AGENT].email)
    agent.goto(f"/cases/{case_id}")
    section = agent.locator("#evidence")
    expect(section).to_contain_text("No evidence yet.")

    section.get_by_label("Add a receipt or screenshot").set_input_files(
        photo(tmp_path / "receipt-photo.jpg"))
    section.get_by_role("button", name="Upload").click()
    expect(agent.locator(".flash, .flashes").first).to_contain_text("Evidence file added")
    expect(agent.locator("#evidence img")).to_have_count(1)
    assert thumbnail_drawn(agent)

    section.get_by_label("Add a receipt or screenshot").set_input_files(tmp_path / "statement.pdf")
    section.get_by_role("button", name="Upload").click()
    expect(section.locator(".evidence-doc")).to_have_text("PDF document")
    expect(section.get_by_role("link", name="statement.pdf")).to_have_attribute(
        "href", f"/cases/{case_id}/evidence/2")

    section.get_by_label("Add a receipt or screenshot").set_input_files(tmp_path / "drawing.svg")
    section.get_by_role("button", name="Upload").click()
    expect(agent.locator("#evidence-file-error")).to_contain_text(
        "Only PDF, JPEG and PNG files are accepted")
    expect(agent.locator("#evidence .evidence-list li")).to_have_count(2)
    agent.locator("#evidence").scroll_into_view_if_needed()
    agent.screenshot(path=str(SHOTS / "case-evidence-en.png"), full_page=True)

    with agent.expect_download() as download:
        section.get_by_role("link", name="receipt-photo.jpg").click()
    kept = download.value.path().read_bytes()
    with Image.open(io.BytesIO(kept)) as image:
        assert image.format == "JPEG" and not image.getexif()  # no GPS position left

    agent.goto(f"/cases/{case_id}?lang=zh_CN")
    expect(agent.locator("#evidence h2")).to_have_text("证据")
    expect(agent.locator("#evidence")).to_contain_text("PDF 文件")
    assert thumbnail_drawn(agent)
    agent.screenshot(path=str(SHOTS / "case-evidence-zh.png"), full_page=True)
    agent.set_viewport_size({"width": 390, "height": 844})
    agent.reload()
    assert fits(agent, 390)
    agent.locator("#evidence").screenshot(path=str(SHOTS / "case-evidence-zh-390.png"))
