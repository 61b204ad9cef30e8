"""Every main page, full of data (a customer, event and case whose values are long unbroken
strings included), at a desk (1,280 px) and on a phone (390 px), in English and in Chinese:
nothing may be wider than the viewport, and the console may hold no error (a CSP violation
is one). Screenshots go to /tmp/shots-layout/ for a person to look at."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from redis import Redis
from sqlalchemy import select, update
from werkzeug.serving import make_server

from portal import create_app
from portal.accounts import Role, User
from portal.cases import services as cases
from portal.cases.models import Case
from portal.customers import services as customers
from portal.customers.models import Customer
from portal.events import services as events
from portal.events.models import Event
from portal.extensions import db
from portal.mailings.models import Mailing
from portal.notices.models import Notice
from portal.postmortems.models import Postmortem
from portal.signoffs.models import SignoffRequest
from tests import crawl_data
from tests.browser.helpers import wait_for_htmx
from tests.conftest import empty_database, make_config
from tests.mail_helpers import start_server

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots-layout")
WIDTHS = {"desk": 1280, "phone": 390}
LOCALES = {"en-US": "en", "zh-CN": "zh_CN"}
LONG_NAME = "Wolfeschlegelsteinhausenbergerdorff" * 4 + "有限责任公司" * 6
LONG_TITLE = "数据中心机房整体断电导致全部交易系统不可用" * 4 + "Datacenterpoweroutage" * 3
LONG_SUMMARY = ("https://status.example.com/incidents/" + "0123456789abcdef" * 8
                + " " + "全部交易系统不可用" * 12)


@dataclass
class Site:
    app: Flask
    credentials: dict[Role, tuple[str, str]]
    pages: list[tuple[str, Role | None, str]]  # (name, who opens it, path)
    case_id: int

    @property
    def paths(self) -> dict[str, str]:
        return {name: path for name, _role, path in self.pages}


def _long_values(staff: dict[Role, User]) -> tuple[Event, Customer, Case]:
    """An event, customer and case whose values do not break by themselves."""
    admin, agent = staff[Role.ADMIN], staff[Role.AGENT]
    event = events.create_event(title=LONG_TITLE[:200], kind="incident", severity="sev2",
                                cause="system", summary=LONG_SUMMARY, actor=admin)
    demo_event = db.session.scalar(select(Event).order_by(Event.id))
    customer = customers.create_customer(demo_event, {
        "external_ref": "CRM-" + "9" * 40, "name": LONG_NAME[:200], "company": LONG_NAME[:200],
        "email": "a" * 60 + "@" + "example" * 8 + ".com", "locale": "en"}, actor=agent)
    case = cases.open_case(customer, cases.CaseInput(
        "compensation", "ORDER-" + "X" * 58, "1234567.89", "CNY", "service_outage",
        LONG_SUMMARY, agent.id), actor=agent)
    cases.add_note(case, LONG_SUMMARY, actor=agent)
    return event, customer, case


def _first(model: Any, *where: Any) -> int:
    return db.session.scalar(select(model.id).where(*where).order_by(model.id))


def _pages(long_event: Event, long_customer: Customer, case: Case) -> list[
        tuple[str, Role | None, str]]:
    event_id = _first(Event)
    notice = db.session.get(Notice, _first(Notice, Notice.status == "published"))
    notice_request = _first(SignoffRequest, SignoffRequest.subject_type == "notice_version")
    case_request = _first(SignoffRequest, SignoffRequest.subject_type == "case_decision")
    agent, legal, admin = Role.AGENT, Role.LEGAL, Role.ADMIN
    return [
        ("login", None, "/login"),
        ("public-index", None, "/notices"),
        ("public-notice", None, f"/notices/{notice.slug}"),
        ("dashboard", agent, "/dashboard"),
        ("dashboard-admin", admin, "/dashboard"),
        ("events", agent, "/events/"),
        ("event", agent, f"/events/{event_id}"),
        ("event-long", admin, f"/events/{long_event.id}"),
        ("cases", agent, "/cases/"),
        ("case", agent, f"/cases/{case.id}"),
        ("customers", agent, f"/customers/event/{event_id}"),
        ("customer", agent, f"/customers/{long_customer.id}"),
        ("notice", agent, f"/staff/notices/{notice.id}"),
        ("notice-edit", agent, f"/staff/notices/{_first(Notice, Notice.status == 'draft')}/edit"),
        ("notice-diff", legal, f"/staff/notices/{_first(Notice, Notice.status == 'draft')}/diff"),
        ("mailings", agent, f"/mailings/event/{event_id}"),
        ("mailing-new", agent, f"/mailings/event/{event_id}/new"),
        ("mailing", agent, f"/mailings/{_first(Mailing, Mailing.status == 'done')}"),
        ("signoffs", legal, "/signoffs/"),
        ("signoff-notice", legal, f"/signoffs/{notice_request}"),
        ("signoff-case", legal, f"/signoffs/{case_request}"),
        ("postmortem", agent, f"/postmortems/{_first(Postmortem)}"),
        ("audit", admin, "/audit/"),
        ("users", admin, "/admin/users/"),
        ("user", admin, f"/admin/users/{_first(User, User.role == 'agent')}"),
        ("case-settings", admin, "/cases/settings"),
        ("event-settings", admin, "/events/settings"),
        ("retention", admin, "/lifecycle/retention"),
        ("profile", agent, "/profile"),
        ("customer-links", agent,
         f"/customers/{_first(Customer, Customer.external_ref == 'CRM-10001')}"),
        ("link-settings", admin, "/customers/link-settings"),
    ]


def _serve(app: Flask) -> Iterator[None]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["LIVE_URL"] = f"http://127.0.0.1:{server.server_port}"
    yield
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def site(database_url: str, redis_url: str, tmp_path_factory) -> Iterator[Site]:
    """The crawl's one-of-everything database, plus the long values, served live."""
    instance = tmp_path_factory.mktemp("layout")
    controller, _handler, port = start_server(instance / "mail", refuse={crawl_data.REFUSED})
    app = create_app(make_config(database_url, redis_url, instance, SMTP_HOST="127.0.0.1",
                                 SMTP_PORT=port, MAILING_RETRY_INLINE_SECONDS=0,
                                 WTF_CSRF_ENABLED=True))
    try:
        with app.app_context():
            credentials = crawl_data.fill()
            staff = {role: db.session.scalar(select(User).where(User.email == email))
                     for role, (email, _password) in credentials.items()}
            long_event, long_customer, case = _long_values(staff)
            db.session.commit()
            pages = _pages(long_event, long_customer, case)
            case_id = case.id
        for _ in _serve(app):
            yield Site(app, credentials, pages, case_id)
    finally:
        controller.stop()
        with app.app_context():
            empty_database()
            db.engine.dispose()
        Redis.from_url(redis_url).flushall()


@pytest.fixture
def live_server(site: Site) -> Flask:
    return site.app


def _speak(site: Site, locale: str) -> None:
    """Staff read their profile's language: set every account's to the browser's."""
    with site.app.app_context():
        db.session.execute(update(User).values(locale=LOCALES[locale]))
        db.session.commit()


def _signed_in(new_page: Callable[..., Page], site: Site, role: Role | None, locale: str,
               width: int) -> Page:
    page = new_page(locale=locale)
    page.set_viewport_size({"width": width, "height": 900})
    if role is not None:
        email, password = site.credentials[role]
        page.goto("/login")
        page.locator("input[name=email]").fill(email)
        page.locator("input[name=password]").fill(password)
        page.locator("form button[type=submit].primary").click()
        page.wait_for_url("**/dashboard")
    return page


# The widest element sticking out of the viewport (not inside a box that scrolls or clips).
WIDEST_OFFENDER = """() => {
  const limit = window.innerWidth + 1;
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden' || o === 'clip') return true;
    }
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (el.className && typeof el.className === 'string'
       ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  let worst = null;
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right <= limit || r.width === 0 || clipped(el)) continue;
    const path = [];
    for (let p = el; p && p !== document.body; p = p.parentElement) path.unshift(name(p));
    const text = (el.innerText || el.value || '').trim().slice(0, 60);
    if (!worst || r.right > worst.right || (r.right === worst.right && path.length > worst.depth))
      worst = {right: Math.round(r.right), depth: path.length, path: path.join(' > '), text};
  }
  return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, worst};
}"""


def overflow(page: Page) -> str | None:
    """None when the page fits its viewport, else what sticks out."""
    found = page.evaluate(WIDEST_OFFENDER)
    if found["scroll"] <= found["inner"]:
        return None
    worst = found["worst"] or {}
    return (f"{found['scroll']} px wide in {found['inner']} px; widest: {worst.get('path')} "
            f"(right edge {worst.get('right')} px) {worst.get('text')!r}")


def _shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("width", list(WIDTHS), ids=list(WIDTHS))
@pytest.mark.parametrize("locale", list(LOCALES))
def test_every_main_page_fits_the_viewport_without_console_errors(
        new_page: Callable[..., Page], site: Site, locale: str, width: str) -> None:
    _speak(site, locale)
    pages: dict[Role | None, Page] = {}
    too_wide = []
    for name, role, path in site.pages:
        if role not in pages:
            pages[role] = _signed_in(new_page, site, role, locale, WIDTHS[width])
        page = pages[role]
        answer = page.goto(path)
        assert answer is not None and answer.status == 200, f"{path}: {answer and answer.status}"
        page.wait_for_load_state("networkidle")
        _shoot(page, f"{LOCALES[locale]}-{WIDTHS[width]}-{name}")
        if problem := overflow(page):
            too_wide.append(f"{name} {path}: {problem}")
    assert too_wide == [], "Wider than the viewport:\n" + "\n".join(too_wide)


@pytest.mark.parametrize("locale", list(LOCALES))
def test_htmx_submits_and_filters_leave_no_csp_error(
        new_page: Callable[..., Page], site: Site, console_errors: list[str],
        locale: str) -> None:
    """htmx's own indicator styles are inline (refused by the CSP): they are turned off and
    ours are in the stylesheet. A boosted form, a filter swap and a checklist tick."""
    _speak(site, locale)
    page = _signed_in(new_page, site, Role.AGENT, locale, WIDTHS["phone"])
    page.goto(f"/cases/{site.case_id}")
    page.locator("textarea[name=body]").fill(f"A note in {locale}")
    page.locator("#notes form button[type=submit]").click()
    expect(page.locator("#notes")).to_contain_text(f"A note in {locale}")
    wait_for_htmx(page)
    page.locator("#notes form button[type=submit]").click()  # empty: the 422 is swapped in
    expect(page.locator("#notes .error")).to_be_visible()
    wait_for_htmx(page)
    page.goto("/cases/")
    page.locator("#q").fill("CRM-1000")
    expect(page).to_have_url(re.compile(r"q=CRM-1000"))
    wait_for_htmx(page)
    page.locator("#status").select_option(index=1)
    wait_for_htmx(page)
    assert overflow(page) is None
    _shoot(page, f"{LOCALES[locale]}-390-cases-after-filter")
    page.goto(site.paths["event"])
    page.locator("#checklist button.tick").first.click()
    expect(page.locator("#checklist .task.done").first).to_be_visible()
    wait_for_htmx(page)
    page.goto(site.paths["notice-edit"])
    page.locator("textarea[name=body_en]").fill("**Typed** in the editor")
    expect(page.locator("#preview-en strong")).to_have_text("Typed")
    page.goto(site.paths["mailing-new"])
    expect(page.locator("#audience")).not_to_have_attribute("hx-trigger", "load")
    wait_for_htmx(page)
    legal = _signed_in(new_page, site, Role.LEGAL, locale, WIDTHS["desk"])
    legal.goto("/signoffs/")
    legal.locator("#kind").select_option(index=1)
    expect(legal).to_have_url(re.compile(r"kind="))
    wait_for_htmx(legal)
    assert console_errors == []


def test_the_console_watch_catches_a_csp_violation(
        new_page: Callable[..., Page], site: Site, console_errors: list[str]) -> None:
    """What the tests above rely on: Chromium reports a refused inline style as a console
    error, and the ``console_errors`` fixture keeps it."""
    page = new_page()
    page.goto("/login")
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color:red\">x</p>')")
    page.wait_for_timeout(200)
    assert any("violates" in error and "style-src" in error for error in console_errors), \
        console_errors
    console_errors.clear()  # seen: the page itself was clean


def test_favicon_is_served(site: Site) -> None:
    answer = site.app.test_client().get("/favicon.ico")
    assert answer.status_code == 200 and answer.mimetype.startswith("image/")


@pytest.mark.parametrize(("locale", "text"), [("zh-CN", "请先登录。"),
                                               ("en-US", "Please sign in to continue.")])
def test_sign_in_prompt_and_language_switch_on_the_login_page(
        new_page: Callable[..., Page], site: Site, locale: str, text: str) -> None:
    page = new_page(locale=locale)
    page.goto("/cases/")
    expect(page.locator(".flash")).to_have_text(text)
    other = "English" if locale == "zh-CN" else "简体中文"
    page.get_by_role("button", name=other, exact=True).click()
    expect(page.locator("html")).to_have_attribute("lang", "en" if other == "English"
                                                    else "zh-CN")
    assert overflow(page) is None
