"""Locale choice: ``?lang=``, then a registered locale source (the customer page's session,
see :func:`add_locale_source`), then a staff member's profile, then the visitor's switch (a
cookie), then the browser's Accept-Language, then the configured default. Public pages use
only ``?lang=`` and Accept-Language."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from flask import Flask, current_app, has_request_context, request
from flask_babel import force_locale, get_locale, get_timezone, gettext, lazy_gettext
from flask_login import current_user
from markupsafe import Markup, escape
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from portal.config import LOCALES

LOCALE_COOKIE = "aftercare_lang"
_PARSED = {code: Locale.parse(code) for code in LOCALES}
LOCALE_NAMES = {"zh_CN": "简体中文", "en": "English"}


# Callables that may choose the request's language before the staff profile and the cookie
# (the customer page's own switch); registered by ``portal.wiring``.
_LOCALE_SOURCES: list[Callable[[], str | None]] = []


def add_locale_source(source: Callable[[], str | None]) -> None:
    if source not in _LOCALE_SOURCES:
        _LOCALE_SOURCES.append(source)


def select_locale() -> Locale:
    """For Flask-Babel: a ready Locale (parsing one per request costs more than a whole
    cached public page)."""
    return _PARSED[locale_code()]


def locale_code() -> str:
    """The request's locale: ``zh_CN`` or ``en``."""
    if not has_request_context():  # CLI and jobs: the configured default
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    asked = request.args.get("lang")
    if asked in LOCALES:
        return asked
    for source in _LOCALE_SOURCES:
        chosen = source()
        if chosen in LOCALES:
            return chosen
    # Public pages are shared-cacheable: only the URL and Accept-Language choose their language.
    if request.blueprint != "public":
        if current_user and current_user.is_authenticated and current_user.locale in LOCALES:
            return current_user.locale
        chosen = request.cookies.get(LOCALE_COOKIE)
        if chosen in LOCALES:
            return chosen
    header = request.headers.get("Accept-Language", "")
    return from_accept_language(header) or current_app.config["BABEL_DEFAULT_LOCALE"]


@lru_cache(maxsize=256)
def from_accept_language(header: str) -> str | None:
    """Browsers send a handful of distinct headers: parse each once."""
    best = parse_accept_header(header, LanguageAccept).best_match(["zh-CN", "zh", "en"])
    if best in ("zh-CN", "zh"):
        return "zh_CN"
    return "en" if best == "en" else None


def select_timezone() -> str:
    return current_app.config["BABEL_DEFAULT_TIMEZONE"]


# --- codes shown as words -------------------------------------------------------------------

# Each kind of code (a case status, a role…) and its labels, lazy texts read in the reader's
# language; filled by ``portal.wiring`` from the domains' own label maps.
_TERMS: dict[str, Mapping[str, Any]] = {"value": {"none": lazy_gettext("none")}}


# Kinds whose labels are one language's words in every reader's (the 复盘 step names): the
# language they are written in, so a page marks them as such.
_TERM_LANGUAGES: dict[str, str] = {}


def register_terms(languages: Mapping[str, str] | None = None,
                   **kinds: Mapping[str, Any]) -> None:
    """Name the label map of each kind of code (``portal.wiring`` does, once per process);
    ``languages`` names the kinds whose labels are always in one language (BCP 47 tag)."""
    _TERMS.update(kinds)
    _TERM_LANGUAGES.update(languages or {})


def term_kinds() -> frozenset[str]:
    return frozenset(_TERMS)


def term_label(kind: str, value: object) -> str:
    """The label of a code in the reader's language; an unknown code is shown as it is."""
    label = _TERMS.get(kind, {}).get(value)
    return "" if value is None else str(value if label is None else label)


def term(kind: str, value: object) -> dict[str, str]:
    """A message parameter that is a code (a status, a kind, a role…): stored as the code and
    shown as its label in the reader's language."""
    return {"term": kind, "value": str(value)}


def localised(texts: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """A message parameter written in each language (a notice's titles): shown in the
    reader's, else in the default language, else in any."""
    return {"localised": dict(texts)}


def reader_locale() -> str:
    """The language being rendered (``force_locale`` included): ``zh_CN`` or ``en``."""
    return "zh_CN" if get_locale().language == "zh" else "en"


def _param_text(value: Any) -> Any:
    """A stored parameter as text for the reader (codes as labels, nested messages read, a
    list as its items in a row)."""
    if isinstance(value, list):
        separator = "、" if reader_locale() == "zh_CN" else ", "
        return separator.join(str(_param_text(item)) for item in value)
    if isinstance(value, dict):
        if "term" in value:
            return term_label(value["term"], value.get("value"))
        if "localised" in value:
            texts = value["localised"]
            default = current_app.config["BABEL_DEFAULT_LOCALE"]
            return (texts.get(reader_locale()) or texts.get(default)
                    or next(iter(texts.values()), ""))
        if "message" in value:
            return str(Message.from_json(value["message"]))
    return value


def _param_html(value: Any) -> Any:
    """A stored parameter for a page: what people typed (plain text, texts per language)
    marked as :func:`user_text`; labels of codes as words, numbers as they are."""
    if isinstance(value, list):
        separator = "、" if reader_locale() == "zh_CN" else ", "
        return Markup(separator).join(_param_html(item) for item in value)
    if isinstance(value, dict):
        if "term" in value:
            label = term_label(value["term"], value.get("value"))
            language = _TERM_LANGUAGES.get(value["term"])
            return (Markup('<span lang="{}">{}</span>').format(language, label) if language
                    else label)
        if "message" in value:
            return Message.from_json(value["message"]).html()
        return user_text(_param_text(value))
    return user_text(value) if isinstance(value, str) else value


def _stored(value: Any) -> Any:
    return {"message": value.to_json()} if isinstance(value, Message) else value


class Message:
    """A text for people kept as its msgid and parameters, so it is translated when it is
    read, in the reader's language, not when and where it was made (a job has no reader).
    Parameters are plain values, codes (:func:`term`), texts per language (:func:`localised`)
    or other messages. Stored as JSON (``to_json``); mark msgids with ``N_`` so
    ``make messages`` finds them."""

    __slots__ = ("key", "params")

    def __init__(self, key: str, **params: Any) -> None:
        self.key = key
        self.params = {name: _stored(value) for name, value in params.items()}

    def __str__(self) -> str:
        return gettext(self.key, **{name: _param_text(value)
                                    for name, value in self.params.items()})

    def __repr__(self) -> str:
        return f"Message({self.key!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.key, self.params) == (other.key,
                                                                          other.params)

    def __hash__(self) -> int:
        return hash(self.key)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "params": self.params}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> Message:
        """From ``to_json``; a plain string (stored before messages were kept as keys) is
        shown as it is."""
        if isinstance(data, str):
            return cls(data)
        return cls(data["key"], **data.get("params", {}))

    def html(self) -> Markup:
        """The text for a page, in the reader's language, with what people typed marked as
        such (:func:`user_text`): a title or a file name is not a word left untranslated."""
        return Markup(escape(gettext(self.key))) % {
            name: _param_html(value) for name, value in self.params.items()}

    def in_english(self) -> str:
        """The text in English (what is kept beside the key for exports and archives)."""
        with force_locale("en"):
            return str(self)


def N_(key: str, **params: Any) -> Message:
    """A Message; the name is the marker Babel extracts by default."""
    return Message(key, **params)


def html_lang() -> str:
    """The BCP 47 tag for ``<html lang>``: zh-CN or en."""
    return "zh-CN" if str(get_locale()).startswith("zh") else "en"


def user_text(value: object) -> Markup:
    """What a person typed (a name, a title, a note), shown as typed in either language:
    marked ``data-user-content`` so the page-language check leaves it alone, and it breaks
    anywhere rather than push out of its box. For text content only, not attributes."""
    if value is None or value == "":
        return Markup("")
    return Markup("<span data-user-content>{}</span>").format(value)


def with_typed_values(message: Message) -> Markup:
    """A message with its ``value`` parameter (what someone typed: a rejected CSV cell)
    marked as ``user_text``; its other parameters (a column's name) as they are."""
    if not isinstance(message.params.get("value"), str):
        return escape(message)
    params = {**message.params, "value": user_text(message.params["value"])}
    return Markup(escape(gettext(message.key))) % params


def init_app(app: Flask) -> None:
    app.add_template_filter(user_text)
    app.add_template_filter(with_typed_values)

    @app.context_processor
    def locale_context() -> dict[str, object]:
        return {"html_lang": html_lang, "locale_names": LOCALE_NAMES, "locales": LOCALES,
                "term_label": term_label}


def local_to_utc(value: datetime | None) -> datetime | None:
    """A naive date and time typed in a form (the reader's time zone) as UTC."""
    if value is None:
        return None
    # zoneinfo, not the pytz zone Babel hands out: pytz's zone in replace() is local mean
    # time (Shanghai +08:06), six minutes off.
    return value.replace(tzinfo=ZoneInfo(str(get_timezone()))).astimezone(UTC)


def utc_to_local(value: datetime | None) -> datetime | None:
    """The naive local date and time a form field shows for a stored UTC value."""
    return value.astimezone(get_timezone()).replace(tzinfo=None) if value else None
