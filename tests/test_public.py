"""The public site: only what is published, in the reader's language, cacheable."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

from portal.accounts import Role
from portal.events import services as events
from portal.extensions import db
from portal.notices import publishing
from portal.notices import services as notices
from portal.notices.models import NoticeVersion
from tests.notice_helpers import EN, ZH, make_event, make_notice, publish


def test_nothing_unpublished_is_reachable(app, client, users) -> None:
    draft = make_notice(users)
    assert client.get(f"/notices/{draft.slug}").status_code == 404
    direct = make_notice(users, audience="direct")
    publish(direct, users)
    assert client.get(f"/notices/{direct.slug}").status_code == 404
    assert client.get(f"/notices/{direct.slug}.pdf").status_code == 404
    listing = client.get("/notices").text
    assert draft.ref not in listing and direct.ref not in listing


def test_notice_page_in_the_readers_language(app, client, users) -> None:
    notice = make_notice(users)
    publish(notice, users)
    zh = client.get(f"/notices/{notice.slug}", headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 200 and ZH["title"] in zh.text and '<html lang="zh-CN">' in zh.text
    en = client.get(f"/notices/{notice.slug}", headers={"Accept-Language": "en"})
    assert EN["title"] in en.text and ZH["title"] not in en.text
    by_url = client.get(f"/notices/{notice.slug}?lang=zh_CN", headers={"Accept-Language": "en"})
    assert ZH["title"] in by_url.text
    only_zh = make_notice(users, content={"zh_CN": ZH})
    publish(only_zh, users)
    fallback = client.get(f"/notices/{only_zh.slug}", headers={"Accept-Language": "en"})
    assert ZH["title"] in fallback.text and 'lang="zh-CN"' in fallback.text


def test_no_staff_data_and_no_script(app, client, users) -> None:
    notice = make_notice(users)
    publish(notice, users)
    page = client.get(f"/notices/{notice.slug}").text
    for secret in (users[Role.AGENT].email, users[Role.LEGAL].email, users[Role.AGENT].name,
                   "csrf", "X-CSRFToken", "snapshot"):
        assert secret not in page
    assert "<script" not in page and "Set-Cookie" not in client.get("/notices").headers


def test_urgent_notices_are_pinned_then_newest_first(app, client, users) -> None:
    calm = make_notice(users, make_event(severity="sev4", title="Maintenance"),
                       content={"en": {"title": "Calm news", "body": "x"}})
    urgent = make_notice(users, make_event(severity="sev1"),
                         content={"en": {"title": "Urgent news", "body": "x"}})
    publish(urgent, users)
    publish(calm, users)  # newer, but not urgent
    listing = client.get("/notices", headers={"Accept-Language": "en"}).text
    assert listing.index("Urgent news") < listing.index("Calm news")
    filtered = client.get(f"/notices?event={calm.event_id}").text
    assert "Calm news" in filtered and "Urgent news" not in filtered


def test_conditional_requests_and_cache_headers(app, client, users) -> None:
    notice = make_notice(users)
    publish(notice, users)
    first = client.get(f"/notices/{notice.slug}")
    assert first.headers["Cache-Control"] == "public, max-age=60, s-maxage=10"
    assert "Accept-Language" in first.headers["Vary"] and "Cookie" not in first.headers["Vary"]
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = client.get(f"/notices/{notice.slug}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    since = client.get(f"/notices/{notice.slug}", headers={"If-Modified-Since": modified})
    assert since.status_code == 304


def test_publishing_invalidates_the_cached_page(app, client, users) -> None:
    notice = make_notice(users)
    publish(notice, users)
    publishing.after_publication([notice.id])
    before = client.get(f"/notices/{notice.slug}", headers={"Accept-Language": "en"})
    assert EN["title"] in before.text
    # The published row changes underneath, with no publication to invalidate the cache (a
    # plain UPDATE: the ORM refuses to touch a version): the cached copy is still served.
    db.session.execute(NoticeVersion.__table__.update()
                       .where(NoticeVersion.__table__.c.id == notice.published_version_id)
                       .values(title_en="Changed underneath"))
    db.session.commit()
    cached = client.get(f"/notices/{notice.slug}", headers={"Accept-Language": "en"})
    assert cached.data == before.data and "Changed underneath" not in cached.text
    notices.save(notice, content={"zh_CN": ZH, "en": {**EN, "title": "Service restored"}},
                 audience="public", planned_publish_at=None, based_on=1,
                 actor=users[Role.AGENT])
    publish(notice, users)
    publishing.after_publication([notice.id])
    after = client.get(f"/notices/{notice.slug}", headers={"Accept-Language": "en",
                                                           "If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert "Service restored" in after.text and "Updates" in after.text
    assert after.headers["ETag"] != before.headers["ETag"]


def test_withdrawn_notice_shows_why_unless_hidden(app, client, users) -> None:
    from portal.public import cache

    notice = make_notice(users)
    publish(notice, users)
    publishing.withdraw(notice, reason="Superseded by N-2", hide=False, actor=users[Role.AGENT])
    cache.invalidate()
    page = client.get(f"/notices/{notice.slug}", headers={"Accept-Language": "en"})
    assert "withdrawn" in page.text and "Superseded by N-2" in page.text


def test_atom_feed_includes_updates(app, client, users) -> None:
    notice = make_notice(users)
    publish(notice, users)
    notices.save(notice, content={"zh_CN": ZH, "en": {**EN, "title": "Restored"}},
                 audience="public", planned_publish_at=None, based_on=1,
                 actor=users[Role.AGENT])
    publish(notice, users)
    from portal.public import cache

    cache.invalidate()
    response = client.get("/notices/feed.atom", headers={"Accept-Language": "en"})
    assert response.mimetype == "application/atom+xml"
    ns = {"a": "http://www.w3.org/2005/Atom"}
    root = ET.fromstring(response.data)
    titles = [e.find("a:title", ns).text for e in root.findall("a:entry", ns)]
    assert titles == ["Restored", "CRM outage"]
    content = root.find("a:entry/a:content", ns).text
    assert "<strong>400-800-1234</strong>" in content
    assert re.search(r"#v2$", root.find("a:entry/a:id", ns).text)


def test_public_pages_work_without_a_session(app, client, users) -> None:
    notice = make_notice(users)
    publish(notice, users)
    response = client.get(f"/notices/{notice.slug}")
    assert "Set-Cookie" not in response.headers


def test_cached_page_is_served_before_flask_runs(app, client, users) -> None:
    from portal.public.cache import FastPath

    notice = make_notice(users)
    publish(notice, users)
    url = f"/notices/{notice.slug}"
    first = client.get(url, headers={"Accept-Language": "zh-CN"})  # Flask renders and stores
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    calls = []
    inner = fast.wsgi_app
    fast.wsgi_app = lambda environ, start: calls.append(environ["PATH_INFO"]) or inner(
        environ, start)
    try:
        again = client.get(url, headers={"Accept-Language": "zh-CN"})
        assert calls == []  # answered by the fast path
        assert again.data == first.data and again.headers["ETag"] == first.headers["ETag"]
        assert again.headers["Content-Security-Policy"] == first.headers[
            "Content-Security-Policy"]
        assert client.get(url, headers={"If-None-Match": first.headers["ETag"],
                                         "Accept-Language": "zh-CN"}).status_code == 304
        head = client.head(url, headers={"Accept-Language": "zh-CN"})
        assert head.status_code == 200 and head.data == b""
        client.get(url + "?lang=en")  # another language is not cached yet: Flask renders it
        client.get(url + "?x=1")  # other queries always go to Flask
        assert calls == [url, url]
    finally:
        fast.wsgi_app = inner


def test_notice_pdf_in_the_readers_language(app, client, users, run_worker, tmp_path) -> None:
    """``?lang=`` first, then Accept-Language, as the page; each language's PDF has its own
    ETag, and the answer varies with Accept-Language only where the header chose it."""
    from tests.notice_helpers import pdf_text_and_fonts

    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    publish(notice, users)
    publishing.after_publication([notice.id])
    url = f"/notices/{notice.slug}.pdf"
    pending = client.get(f"/notices/{notice.slug}", headers={"Accept-Language": "en"})
    assert "The PDF is being prepared." in pending.text and url not in pending.text
    run_worker()
    rows = notices.signed_pdfs(notice.published_version_id)
    answers = {
        "lang=en": client.get(f"{url}?lang=en", headers={"Accept-Language": "zh-CN"}),
        "lang=zh_CN": client.get(f"{url}?lang=zh_CN", headers={"Accept-Language": "en"}),
        "header en": client.get(url, headers={"Accept-Language": "en-US,en;q=0.9"}),
        "header zh": client.get(url, headers={"Accept-Language": "zh-CN,zh;q=0.9"}),
    }
    expected = {"lang=en": "en", "lang=zh_CN": "zh_CN", "header en": "en",
                "header zh": "zh_CN"}
    for how, response in answers.items():
        locale = expected[how]
        assert response.status_code == 200 and response.mimetype == "application/pdf", how
        assert response.headers["ETag"].strip('"') == rows[locale].sha256, how
        assert response.headers["Cache-Control"] == "public, max-age=300", how
        assert f"{notice.ref}-{locale}.pdf" in response.headers["Content-Disposition"], how
        path = tmp_path / f"{how}.pdf"
        path.write_bytes(response.data)
        text = pdf_text_and_fonts(path)[0]
        mine, other = (EN, ZH) if locale == "en" else (ZH, EN)
        assert mine["title"] in text and other["title"] not in text, how
    assert "Accept-Language" in answers["header en"].headers["Vary"]
    assert "Accept-Language" in answers["header zh"].headers["Vary"]
    assert "Vary" not in answers["lang=en"].headers  # the URL alone chose it
    # Revalidation per language: the English ETag is current for English only.
    en_etag = answers["header en"].headers["ETag"]
    same = client.get(url, headers={"Accept-Language": "en", "If-None-Match": en_etag})
    assert same.status_code == 304 and "Accept-Language" in same.headers["Vary"]
    assert client.get(url, headers={"Accept-Language": "zh-CN",
                                    "If-None-Match": en_etag}).status_code == 200


def test_notice_page_links_the_pdf_of_its_language(app, client, users, run_worker,
                                                   tmp_path) -> None:
    app.config["PDF_DIR"] = str(tmp_path / "pdf")
    notice = make_notice(users)
    only_zh = make_notice(users, content={"zh_CN": ZH})
    for item in (notice, only_zh):
        publish(item, users)
    publishing.after_publication([notice.id, only_zh.id])
    run_worker()
    en = client.get(f"/notices/{notice.slug}", headers={"Accept-Language": "en"}).text
    zh = client.get(f"/notices/{notice.slug}", headers={"Accept-Language": "zh-CN"}).text
    assert f'href="/notices/{notice.slug}.pdf?lang=en"' in en and ".pdf?lang=zh_CN" not in en
    assert f'href="/notices/{notice.slug}.pdf?lang=zh_CN"' in zh and ".pdf?lang=en" not in zh
    # A notice without English: the English page says so and links the English PDF, which
    # carries the Chinese text under the same note.
    fallback = client.get(f"/notices/{only_zh.slug}", headers={"Accept-Language": "en"}).text
    assert "This notice has no English text; the Chinese text follows." in fallback
    assert f'href="/notices/{only_zh.slug}.pdf?lang=en"' in fallback
    assert "no English text" not in client.get(f"/notices/{notice.slug}?lang=en").text


def _revalidated(client, path: str, first) -> object:
    return client.get(path, headers={"Accept-Language": "en",
                                     "If-None-Match": first.headers["ETag"]})


def test_an_event_title_fixed_to_the_same_length_is_a_new_page(app, client, users) -> None:
    """The ETag is the page's time and length (as nginx makes it for the snapshot): a typo
    fixed in the event's public title keeps the length, so the time must move, or readers
    holding the old page are told "304, not modified" and keep the typo."""
    event = make_event()
    notice = make_notice(users, event=event)
    publish(notice, users)
    titles = {"public_title_en": "Sevrice outage", "public_title_zh": "服务中断"}
    events.update_event(event, title=event.title, severity=event.severity, cause=event.cause,
                        summary=event.summary, titles=titles, actor=users[Role.ADMIN])
    db.session.commit()
    other = make_event(title="另一事件")  # a second named event: the list offers the filter
    events.update_event(other, title=other.title, severity=other.severity, cause=other.cause,
                        summary="", titles={"public_title_en": "Other"}, actor=users[Role.ADMIN])
    publish(make_notice(users, event=other), users)
    pages = ("/notices", f"/notices/{notice.slug}")
    before = {path: client.get(path, headers={"Accept-Language": "en"}) for path in pages}
    assert "Sevrice outage" in before["/notices"].text
    time.sleep(1.1)  # Last-Modified counts whole seconds
    events.update_event(event, title=event.title, severity=event.severity, cause=event.cause,
                        summary=event.summary, actor=users[Role.ADMIN],
                        titles={**titles, "public_title_en": "Service outage"})
    db.session.commit()
    listing = _revalidated(client, "/notices", before["/notices"])
    assert listing.status_code == 200 and "Service outage" in listing.text
    assert len(listing.data) == len(before["/notices"].data)
    page = _revalidated(client, f"/notices/{notice.slug}", before[f"/notices/{notice.slug}"])
    assert page.status_code == 200


def test_a_raised_severity_shows_on_the_public_pages_at_once(app, client, users) -> None:
    event = make_event(severity="sev3")
    notice = make_notice(users, event=event)
    publish(notice, users)
    path = f"/notices/{notice.slug}"
    calm = client.get(path, headers={"Accept-Language": "en"})
    assert "Critical (level 1)" not in calm.text
    events.update_event(event, title=event.title, severity="sev1", cause=event.cause,
                        summary=event.summary, actor=users[Role.ADMIN])
    db.session.commit()
    urgent = _revalidated(client, path, calm)
    assert urgent.status_code == 200 and "Critical (level 1)" in urgent.text
    assert "Critical (level 1)" in client.get("/notices", headers={"Accept-Language": "en"}).text
