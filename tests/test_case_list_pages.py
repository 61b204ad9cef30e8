"""The staff case list at scale: keyset pages, the estimated count, substring search and the
overdue filter (both databases: run with DATABASE_URL for PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from sqlalchemy import func, insert, select, text, update

from portal.accounts import Role
from portal.cases import search
from portal.cases import views as case_views
from portal.cases.models import Case
from portal.customers import services as customers
from portal.extensions import db
from portal.models import utcnow
from tests.case_helpers import make_case, make_customer
from tests.notice_helpers import make_event

STATUSES = ("new", "in_progress", "paid", "closed", "approved", "rejected")


def _many_cases(users, n: int) -> list[int]:
    """``n`` cases with deliberate ties on every sort key (created_at, due_at and amount
    repeat in groups), inserted in one go; their ids, oldest first."""
    customer = make_customer(users)
    now = utcnow()
    rows = [{
        "ref": f"C-T-{i:04d}", "event_id": customer.event_id, "customer_id": customer.id,
        "kind": "refund" if i % 2 else "compensation", "order_ref": f"T-{i:04d}",
        "amount": Decimal(10 + i % 4), "currency": "CNY", "reason": "service_outage",
        "description": "", "assignee_id": users[Role.AGENT].id,
        "status": STATUSES[i % len(STATUSES)],
        "due_at": now + timedelta(hours=(i // 5) - 3),  # five share each due time
        "created_at": now - timedelta(minutes=100 - i // 3),  # three share each moment
        "updated_at": now, "created_by_id": users[Role.AGENT].id, "lock_version": 1,
    } for i in range(n)]
    db.session.execute(insert(Case).execution_options(render_nulls=True), rows)
    db.session.flush()
    return list(db.session.scalars(select(Case.id).where(Case.ref.like("C-T-%"))
                                   .order_by(Case.id)))


@pytest.mark.parametrize("sort", sorted(search.SORT_KEYS))
def test_keyset_pages_give_every_case_once_in_sort_order(app, users, sort) -> None:
    ids = _many_cases(users, 23)
    flt = search.CaseFilter(sort=sort)
    expected = [c.id for c in db.session.scalars(flt.statement())]
    assert sorted(expected) == ids
    pages, cursor = [], ""
    while True:
        page = search.CaseFilter(sort=sort).page(after=cursor, size=4)
        pages.append([c.id for c in page.items])
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert [i for p in pages for i in p] == expected  # each once, in order, across ties
    assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 3]
    # and back again from the last page with the "previous" cursors
    back, page = [pages[-1]], search.CaseFilter(sort=sort).page(after=cursor, size=4)
    while page.prev_cursor:
        page = search.CaseFilter(sort=sort).page(before=page.prev_cursor, size=4)
        back.insert(0, [c.id for c in page.items])
    assert back == pages


def test_a_cursor_of_another_sort_or_garbled_starts_at_the_first_page(app, users) -> None:
    _many_cases(users, 9)
    newest = search.CaseFilter(sort="newest").page(size=4)
    first_by_amount = search.CaseFilter(sort="amount").page(size=4)
    moved = search.CaseFilter(sort="amount").page(after=newest.next_cursor, size=4)
    assert [c.id for c in moved.items] == [c.id for c in first_by_amount.items]
    for junk in ("x", "W10", "WyJuZXdlc3QiLCAxXQ", "%%%", "WyJuZXdlc3QiLCJub3QgYSBkYXRlIiwxXQ"):
        assert [c.id for c in search.CaseFilter().page(after=junk, size=4).items] == \
            [c.id for c in newest.items]


def _refs(html: str) -> list[str]:
    return re.findall(r">(C-T-\d{4})</a>", html)


def _link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    return unescape(found.group(1)) if found else None


def test_next_and_previous_links_walk_the_list_and_survive_a_language_switch(
        app, client, auth, users, monkeypatch) -> None:
    monkeypatch.setattr(case_views, "PAGE_SIZE", 5)
    _many_cases(users, 12)
    auth.login(Role.AGENT)
    url, seen, pages = "/cases/?sort=due&kind=refund", [], []
    while url:
        html = client.get(url).text
        pages.append(url)
        seen += _refs(html)
        url = _link(html, "next")
        assert url is None or ("sort=due" in url and "kind=refund" in url and "after=" in url)
    assert len(seen) == 6 and len(set(seen)) == 6 and len(pages) == 2
    second = client.get(pages[1]).text
    previous = _link(second, "prev")
    assert previous and "before=" in previous
    assert _refs(client.get(previous).text) == seen[:5]
    # the htmx swap tells the language switch where the list now is
    partial = client.get(pages[1], headers={"HX-Request": "true", "HX-Target": "case-results"})
    assert 'id="lang-next"' in partial.text and 'hx-swap-oob="true"' in partial.text
    switched = client.post("/language", data={"locale": "zh_CN", "next": pages[1]})
    assert switched.status_code == 302 and "after=" in switched.headers["Location"]
    zh = client.get(switched.headers["Location"]).text
    assert _refs(zh) == seen[5:] and "上一页" in zh


def test_count_is_estimated_above_the_threshold_and_exact_on_request(
        app, client, auth, users) -> None:
    _many_cases(users, 12)
    auth.login(Role.AGENT)
    app.config["CASE_COUNT_THRESHOLD"] = 50
    page = client.get("/cases/").text
    assert "12 cases" in page and "Count exactly" not in page
    app.config["CASE_COUNT_THRESHOLD"] = 5
    page = client.get("/cases/?kind=refund").text
    assert "about " in page and "12 cases" not in page
    exact_url = unescape(re.search(r'href="([^"]*count=exact[^"]*)"', page).group(1))
    assert "kind=refund" in exact_url
    exact = client.get(exact_url, headers={"HX-Request": "true", "HX-Target": "case-results"})
    assert "6 cases" in exact.text and "about" not in exact.text
    client.post("/language", data={"locale": "zh_CN", "next": "/cases/"})
    zh = client.get("/cases/").text
    assert "约 " in zh and "精确统计" in zh
    assert "12" in client.get("/cases/?count=exact").text.split('id="case-count"')[1][:40]


def test_the_estimate_scales_a_sample_to_all_cases(app, users) -> None:
    _many_cases(users, 600)
    new = search.CaseFilter(status="new")
    exact = new.count(10, exact=True)
    estimated = new.count(10)
    assert exact == search.Count(100, False)
    assert estimated.estimated and 70 <= estimated.value <= 130
    assert search.CaseFilter(status="new").count(100) == search.Count(100, False)
    assert search.Count(57_123, True).shown == "57,000"


def test_search_finds_the_middle_of_a_word(app, client, auth, users) -> None:
    event = make_event()
    smith = customers.create_customer(event, {
        "external_ref": "K-9", "name": "Jonathan Blacksmith", "company": "北京云帆科技有限公司",
        "email": "j.hammersmithy@example.com", "locale": "en"}, actor=users[Role.AGENT])
    other = make_case(users, customer=make_customer(users, event=event), order_ref="O-2")
    case = make_case(users, customer=smith, order_ref="ZX-77")
    auth.login(Role.AGENT)
    for q in ("ksmi", "BLACKSMITH", "mmersmi", "云帆科", "帆科技", "云帆", "帆", "ZX-7", "zx-7"):
        page = client.get("/cases/", query_string={"q": q}).text
        assert case.ref in page, q
        assert other.ref not in page, q
    for q in ("%", "_", "ksmi%"):  # wildcards are literal
        assert case.ref not in client.get("/cases/", query_string={"q": q}).text


def test_a_search_matching_many_customers_filters_row_by_row(app, users, monkeypatch) -> None:
    """Above CUSTOMER_LIMIT matching customers the search is a filter, not a list of ids;
    the same cases are found and the count is estimated."""
    event = make_event()
    for i in range(3):
        customer = customers.create_customer(event, {
            "external_ref": f"S-{i}", "name": f"Anna Smith{i}", "email": f"a{i}@example.com",
            "locale": "en"}, actor=users[Role.AGENT])
        make_case(users, customer=customer, order_ref=f"S-{i}")
    make_case(users, customer=make_customer(users, event=event), order_ref="N-1")
    listed = {c.ref for c in search.CaseFilter(q="smith").page().items}
    monkeypatch.setattr(search, "CUSTOMER_LIMIT", 1)
    many = search.CaseFilter(q="smith")
    assert {c.ref for c in many.page().items} == listed and len(listed) == 3
    assert many._many and many.count(100).estimated
    assert many.count(100, exact=True) == search.Count(3, False)


def test_overdue_means_open_before_payment_and_past_due(app, client, auth, users) -> None:
    ids = _many_cases(users, 30)
    now = utcnow()
    db.session.execute(update(Case).where(Case.id.in_(ids[::2]))
                       .values(due_at=now - timedelta(hours=1)))
    db.session.flush()
    db.session.expire_all()
    expected = {c.ref for c in db.session.scalars(select(Case)) if c.overdue}
    assert expected and len(expected) < 15
    auth.login(Role.AGENT)
    assert set(_refs(client.get("/cases/?overdue=1").text)) == expected
    both = search.CaseFilter(overdue=True, status="paid").page(size=50)
    assert both.items == []
    new_only = {c.ref for c in search.CaseFilter(overdue=True, status="new").page().items}
    assert new_only == {r for r in expected
                        if db.session.scalar(select(Case.status).where(Case.ref == r)) == "new"}


def test_postgresql_has_the_trigram_indexes(app) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (on SQLite the migration adds none)")
    names = set(db.session.scalars(text(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'customer'")))
    assert {"ix_customer_name_trgm", "ix_customer_email_trgm",
            "ix_customer_company_trgm"} <= names
    assert db.session.scalar(select(func.count()).select_from(text("pg_extension"))
                             .where(text("extname = 'pg_trgm'"))) == 1


def test_the_navigation_count_stops_at_99_plus(app, client, auth, users) -> None:
    """Counted in full, an agent's 250,000 due cases cost every page 30 ms at a million."""
    ids = _many_cases(users, 300)
    db.session.execute(update(Case).where(Case.id.in_(ids))
                       .values(due_at=utcnow() - timedelta(hours=1)))
    auth.login(Role.AGENT)
    page = client.get("/cases/").text
    assert re.search(r'id="my-work-count">99\+<', page)
    db.session.execute(update(Case).where(Case.id.in_(ids[10:]))
                       .values(due_at=utcnow() + timedelta(days=3)))
    assert re.search(r'id="my-work-count">5<', client.get("/cases/").text)
