"""Every page of the populated crawl reads in one language: no English word a person sees on
a Chinese page, no Chinese on an English one, beyond proper names and codes.

What people typed (titles, names, notice text, notes ...) is theirs and is shown as it is:
templates mark it with ``data-user-content``, and text in another language on purpose (the
language switch) carries its own ``lang``. Both are left out, as are codes (``<code>``),
e-mail addresses, web addresses, digests and references."""

from __future__ import annotations

import re
from collections import defaultdict
from html.parser import HTMLParser

import pytest

from portal.accounts import Role
from portal.i18n import Message, with_typed_values
from tests.test_crawl import LOCALES, ROLES, Site, _client_for, site  # noqa: F401 (fixture)

# Proper names, product names and codes a Chinese page shows as they are.
ALLOWED = {
    "aftercare",  # the product
    "cny", "usd", "eur", "hkd", "gbp", "jpy", "sgd",  # currency codes
    "sha", "csv", "pdf", "jpeg", "png", "sla", "crm", "html", "url", "atom", "markdown", "utc",
    "smtp", "json", "iso", "utf", "bom", "gbk", "excel", "iban",
    "xml", "pain", "camt",  # ISO 20022 message names (pain.001, pain.002, camt.054, XML)
    "english",  # a language's own name, on the language switch and in language fields
}
OWN_NAMES = {"简体中文"}
# Not read: code, and what a person edits (a field's content is in the field's language).
# <title> repeats the page's heading and cannot hold a marked element.
SKIPPED_ELEMENTS = {"script", "style", "code", "kbd", "samp", "textarea", "title"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
READ_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")
NOT_WORDS = re.compile(
    r"[\w.+-]+@[\w-]+(\.[\w-]+)+"  # e-mail addresses
    r"|https?://\S+|/[\w./?=&%-]+"  # web addresses and paths
    r"|\b[0-9a-f]{12,}\b"  # digests
    r"|\b[a-z]+_[a-z_]+\b"  # names of columns and fields: external_ref
    r"|\b[A-Z]{1,4}-[\w-]*\d[\w-]*")  # references: C-2026-00005, N-2026-0001 v2, CRM-10001
ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")
CHINESE = re.compile(r"[\u3400-\u9fff\uff01-\uff5e\u3001-\u3011]+")


class Visible(HTMLParser):
    """The text a person reads on the page, in the page's language, outside user content."""

    def __init__(self, page_lang: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_lang = page_lang
        self.stack: list[tuple[str, bool]] = []  # (tag, skipped with what is inside it)
        self.texts: list[str] = []

    @property
    def skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        lang = values.get("lang")
        skip = self.skipping or tag in SKIPPED_ELEMENTS or "data-user-content" in values or (
            lang is not None and lang[:2] != self.page_lang) or values.get("translate") == "no"
        if not skip:
            self.texts.extend(values[a] or "" for a in READ_ATTRIBUTES if values.get(a))
            if tag == "input" and values.get("type") in ("submit", "button", "reset"):
                self.texts.append(values.get("value") or "")
        if tag not in VOID:
            self.stack.append((tag, skip))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if not self.skipping and data.strip():
            self.texts.append(data)


def visible_texts(html: str, page_lang: str) -> list[str]:
    """The texts a person reads in the page's language (``zh`` or ``en``); htmx partials
    have no ``<html lang>`` of their own, so it is the language asked for."""
    parser = Visible(page_lang)
    parser.feed(html)
    return [" ".join(t.split()) for t in parser.texts]


def foreign_words(lang: str, text: str, names: frozenset[str] = frozenset()) -> list[str]:
    """English words on a Chinese page, Chinese on an English page; ``names`` are more
    proper names (the configured company's, as e-mails and the public site show it)."""
    text = NOT_WORDS.sub(" ", text)
    if lang == "zh":
        return [w for w in ENGLISH_WORD.findall(text)
                if w.lower() not in ALLOWED and w.lower() not in names]
    return [w for w in CHINESE.findall(text) if w not in OWN_NAMES]


def test_the_reader_finds_english_on_a_chinese_page_and_leaves_user_content() -> None:
    html = ('<html lang="zh-CN"><head><title>案件 · Aftercare</title></head><body>'
            '<h1>案件 <small data-user-content>Refund for Anna</small></h1>'
            '<p>状态：<b>pending</b> · C-2026-00005 · anna@example.com · 1.00 CNY</p>'
            '<button lang="en">English</button><input placeholder="Search">'
            '<script>var words = "never read";</script><code>case.note</code></body></html>')
    texts = visible_texts(html, "zh")
    assert [w for t in texts for w in foreign_words("zh", t)] == ["pending", "Search"]
    texts = visible_texts('<html lang="en"><body><p>Case 已支付</p><option>简体中文</option>'
                          '<span data-user-content>王芳</span></body></html>', "en")
    assert [w for t in texts for w in foreign_words("en", t)] == ["已支付"]


@pytest.mark.parametrize("locale", list(LOCALES))
@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value if r else "anonymous")
def test_every_page_reads_in_its_own_language(site: Site, role: Role | None,  # noqa: F811
                                              locale: str) -> None:
    client = _client_for(site, role, locale)
    company = frozenset(ENGLISH_WORD.findall(site.app.config["PORTAL_COMPANY_NAME"].lower()))
    found: dict[str, set[str]] = defaultdict(set)  # word → endpoints
    for target in site.targets:
        answer = client.get(target.url, headers={"Accept-Language": LOCALES[locale]})
        if answer.status_code != 200 or answer.mimetype != "text/html":
            continue
        lang = locale[:2]
        for text in visible_texts(answer.get_data(as_text=True), lang):
            for word in foreign_words(lang, text, company):
                found[f"{word!r} in {text[:80]!r}"].add(target.endpoint)
    report = "\n".join(f"{where}: {', '.join(sorted(endpoints))}"
                       for where, endpoints in sorted(found.items()))
    assert not found, f"Foreign words on {locale} pages:\n{report}"


def test_a_rejected_csv_cell_is_marked_as_typed_inside_its_message(app) -> None:
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        shown = with_typed_values(Message("%(value)s is not an e-mail address.",
                                          value="not-an-email<b>"))
    assert shown == "<span data-user-content>not-an-email&lt;b&gt;</span> 不是有效的邮箱地址。"
