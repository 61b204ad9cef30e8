"""Markdown to safe HTML, its plain text, and the check that a saved text renders as written.

Markdown is rendered with raw HTML disabled and the result is cleaned again with an
allow-list (nh3), so nothing a drafter types can run in a reader's browser. The plain text
(a mail's text part) is derived from that same sanitised HTML, never from the Markdown, so it
says nothing legal did not see; and ``check_renderable`` refuses, when a text is saved,
Markdown the renderer would drop or that would overwhelm the PDF renderer.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from html.parser import HTMLParser

import nh3
from flask_babel import gettext as _
from markdown_it import MarkdownIt

from portal.errors import RuleViolation

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_md.enable("table")

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "ul", "ol", "li", "a", "h2", "h3", "h4", "blockquote", "code",
    "pre", "hr", "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto", "tel"}


def render_markdown(text: str) -> str:
    """Safe HTML for a Markdown body."""
    return _sanitise(_md.render(text or ""))


def _sanitise(rendered: str) -> str:
    return nh3.clean(
        rendered, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


class _TextWriter(HTMLParser):
    """Plain text of sanitised notice HTML: blocks on lines of their own, list items marked,
    quotes prefixed with "> ", table cells separated by " | ", a link's address after it."""

    _BLOCKS = frozenset({"p", "h2", "h3", "h4", "blockquote", "pre", "table", "hr"})
    _INDENT, _PRE = "\x01", "\x02"  # stand-ins that survive the whitespace clean-up

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.quotes = 0
        self.lists: list[list[int]] = []  # per open list: [next number] (ol) or [] (ul)
        self.pre: list[str] | None = None
        self.pre_blocks: list[str] = []
        self.links: list[tuple[str | None, int]] = []  # (href, where its text starts)
        self.row_cells = 0

    def _line(self, blank: bool = False) -> None:
        self.out.append("\n\n" if blank else "\n")
        self.out.append("> " * self.quotes)

    def _block(self, tag: str) -> bool:
        """Whether the tag starts a line: paragraphs and lists inside a list item do not."""
        return (tag in self._BLOCKS and not (tag == "p" and self.lists)) or (
            tag in ("ul", "ol") and not self.lists)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._block(tag):
            self._line(blank=not self.lists)
        if tag == "blockquote":
            self.quotes += 1
            self.out.append("> ")
        elif tag in ("ul", "ol"):
            self.lists.append([1] if tag == "ol" else [])
        elif tag == "li":
            self._line()
            numbers = self.lists[-1] if self.lists else []
            marker = f"{numbers[0]}. " if numbers else "- "
            if numbers:
                numbers[0] += 1
            self.out.append(self._INDENT * max(len(self.lists) - 1, 0) + marker)
        elif tag == "pre":
            self.pre = []
        elif tag == "br":
            self._line()
        elif tag == "hr":
            self.out.append("----")
        elif tag == "tr":
            self._line()
            self.row_cells = 0
        elif tag in ("td", "th"):
            if self.row_cells:
                self.out.append(" | ")
            self.row_cells += 1
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.out)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote":
            self.quotes = max(self.quotes - 1, 0)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        elif tag == "pre" and self.pre is not None:
            prefix = "\n" + "> " * self.quotes
            self.pre_blocks.append("".join(self.pre).rstrip("\n").replace("\n", prefix))
            self.out.append(f"{self._PRE}{len(self.pre_blocks) - 1}{self._PRE}")
            self.pre = None
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.out[start:]).strip()
            if href and href not in (label, f"mailto:{label}", f"tel:{label}"):
                self.out.append(f" <{href}>")
        if self._block(tag):
            self._line(blank=not self.lists)

    def handle_data(self, data: str) -> None:
        if self.pre is not None:
            self.pre.append(data)
        else:
            self.out.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [re.sub(" {2,}", " ", line).strip() for line in "".join(self.out).split("\n")]
        lines = ["" if not line.strip(" >") else line.replace(self._INDENT, "  ")
                 for line in lines]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
        return re.sub(f"{self._PRE}(\\d+){self._PRE}",
                      lambda m: self.pre_blocks[int(m.group(1))], text)


def plain_text(safe_html: str) -> str:
    """The plain text of HTML from ``render_markdown`` (a mail's text part)."""
    writer = _TextWriter()
    writer.feed(safe_html)
    writer.close()
    return writer.text()


def render_plain_text(text: str) -> str:
    """Plain text of a Markdown body, derived from its sanitised HTML (what legal approves)."""
    return plain_text(render_markdown(text))


# Limits a saved text must keep: deeper nesting or more table cells overwhelm WeasyPrint
# (RecursionError; tens of seconds and hundreds of MB), and no notice needs them.
MAX_NESTING = 16
MAX_TABLE_CELLS = 1000
_WORD = re.compile(r"[^\W_]+")


class _Shape(HTMLParser):
    """How deep the rendered HTML nests, how many table cells it has, and its visible words
    (text and attribute values: a link's address, its title)."""

    _VOID = frozenset({"br", "hr", "img"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = self.max_depth = self.cells = 0
        self.visible: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.visible.extend(value for _name, value in attrs if value)
        self.cells += tag in ("td", "th")
        if tag not in self._VOID:
            self.depth += 1
            self.max_depth = max(self.max_depth, self.depth)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._VOID:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        self.visible.append(data)


def _has_image(tokens: list) -> bool:
    return any(child.type == "image" for token in tokens for child in (token.children or []))


def check_renderable(text: str, *, field: str) -> None:
    """RuleViolation (on ``field``) for Markdown that would not reach readers as written:
    nested too deeply or too many table cells for the PDF renderer, an image (only its
    address would survive; its text would not), or any word the renderer would drop."""
    if not text:
        return
    env: dict = {}
    tokens = _md.parse(text, env)  # parsed once: rendering the same tokens is what readers get
    shape = _Shape()
    shape.feed(_sanitise(_md.renderer.render(tokens, _md.options, env)))
    shape.close()
    if shape.max_depth > MAX_NESTING:
        raise RuleViolation(_("This text is nested too deeply (quotes, lists or emphasis "
                              "inside one another): at most %(n)d levels.", n=MAX_NESTING),
                            field=field)
    if shape.cells > MAX_TABLE_CELLS:
        raise RuleViolation(_("Tables in this text have %(found)d cells; at most %(n)d are "
                              "allowed.", found=shape.cells, n=MAX_TABLE_CELLS), field=field)
    if _has_image(tokens):
        raise RuleViolation(_("Images are not shown in notices (neither their picture nor "
                              "their text): write the text itself instead."), field=field)
    labels = {word for label in env.get("references", {}) for word in
              _WORD.findall(label.casefold())}
    wanted = Counter(w for w in _WORD.findall(html.unescape(text).casefold()) if w not in labels)
    shown = "\n".join(shape.visible).casefold()
    shown_words = Counter(_WORD.findall(shown))
    # A word may also be shown inside a longer run (中文**加粗**中文 renders as one run).
    missing = [word for word, count in wanted.items()
               if shown_words[word] < count and shown.count(word) < count]
    if missing:
        raise RuleViolation(_("Part of this text would not be shown to readers (for example "
                              "“%(words)s”): check for nesting deeper than %(n)d levels and for "
                              "link definitions that are never used.",
                              words=" ".join(missing[:5]), n=MAX_NESTING), field=field)
