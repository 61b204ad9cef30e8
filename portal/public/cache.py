"""A server-side cache of rendered public pages, built for the spike of an incident.

Each process keeps rendered pages in memory. Publishing (or withdrawing, or a new PDF) bumps a
generation counter in Redis; a process compares its generation with Redis at most once a
second and drops its pages when it moved, so a publication shows everywhere within a second
and immediately in the process that made it. Without Redis nothing is cached.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.http import http_date, parse_date

from portal.i18n import from_accept_language

GENERATION_KEY = "aftercare:public:generation"
CHECK_EVERY_SECONDS = 1.0
MAX_PAGES = 2000


MAX_AGE_SECONDS = 60
# Shared caches (the nginx in front) keep a page 10 s, so a publication reaches every reader
# within seconds; browsers keep it a minute and revalidate cheaply with the ETag.
SHARED_MAX_AGE_SECONDS = 10
CACHE_CONTROL = f"public, max-age={MAX_AGE_SECONDS}, s-maxage={SHARED_MAX_AGE_SECONDS}"


@dataclass(frozen=True)
class CachedPage:
    """A rendered page with its response headers, built once per render."""

    body: bytes
    etag: str
    last_modified: datetime | None
    headers: list[tuple[str, str]]
    headers_304: list[tuple[str, str]]

    @classmethod
    def build(cls, body: bytes, last_modified: datetime | None, mimetype: str) -> CachedPage:
        from portal.security import SECURITY_HEADERS

        etag = static_etag(last_modified, len(body))
        common = [("ETag", f'"{etag}"'), ("Cache-Control", CACHE_CONTROL),
                  ("Vary", "Accept-Language"), *SECURITY_HEADERS]
        if last_modified:
            common.append(("Last-Modified", http_date(last_modified)))
        return cls(body, etag, last_modified,
                   [("Content-Type", f"{mimetype}; charset=utf-8"), *common], common)

    def not_modified(self, if_none_match: str | None, if_modified_since: str | None) -> bool:
        """RFC 9110: If-None-Match wins; otherwise compare dates at one-second precision."""
        if if_none_match:
            tags = {t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")}
            return self.etag in tags or "*" in tags
        if if_modified_since and self.last_modified:
            since = parse_date(if_modified_since)
            return since is not None and self.last_modified.replace(microsecond=0) <= since
        return False


def static_etag(last_modified: datetime | None, size: int) -> str:
    """nginx's ETag for a static file, ``<mtime in hex>-<size in hex>``: the static snapshot
    (``portal.public.snapshot``) stores each page with its Last-Modified as the file's mtime,
    so nginx, serving the file by itself, sends the very ETag the portal sends. A page changes
    its Last-Modified (a publication, an update, a withdrawal) or its length (a PDF link, a
    notice more or less in the list) whenever its content changes."""
    seconds = 0
    if last_modified is not None:
        aware = last_modified if last_modified.tzinfo else last_modified.replace(tzinfo=UTC)
        seconds = int(aware.timestamp())
    return f"{seconds:x}-{size:x}"


class PageCache:
    def __init__(self, redis_url: str) -> None:
        self._pages: dict[Hashable, CachedPage] = {}
        self._generation: int | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._redis_client = Redis.from_url(redis_url, socket_timeout=0.5,
                                            socket_connect_timeout=0.5)

    def _redis(self) -> Redis:
        return self._redis_client

    def peek(self, key: Hashable) -> CachedPage | None:
        """A fresh cached page, or None (the caller renders it)."""
        return self._pages.get(key) if self._fresh() else None

    def _fresh(self) -> bool:
        """Whether cached pages may be served (the generation is known and unchanged)."""
        now = time.monotonic()
        if now - self._checked_at < CHECK_EVERY_SECONDS and self._generation is not None:
            return True
        try:
            generation = int(self._redis().get(GENERATION_KEY) or 0)
        except (RedisError, OSError, ValueError):
            self._pages.clear()
            self._generation = None
            return False
        with self._lock:
            if generation != self._generation:
                self._pages.clear()
                self._generation = generation
            self._checked_at = now
        return True

    def get_or_render(
        self, key: Hashable, render: Callable[[], tuple[str | bytes, datetime | None, str]]
    ) -> CachedPage:
        fresh = self._fresh()
        page = self._pages.get(key) if fresh else None
        if page is None:
            body, last_modified, mimetype = render()
            data = body.encode() if isinstance(body, str) else body
            page = CachedPage.build(data, last_modified, mimetype)
            if fresh:
                if len(self._pages) >= MAX_PAGES:
                    self._pages.clear()
                self._pages[key] = page
        return page

    def invalidate(self) -> None:
        self._pages.clear()
        self._checked_at = 0.0
        try:
            self._redis().incr(GENERATION_KEY)
        except (RedisError, OSError):
            self._generation = None


def page_cache() -> PageCache:
    return current_app.extensions["public_page_cache"]


NOTICE_PATH = re.compile(r"^/notices/([A-Za-z0-9_-]+)$")
LANG_QUERY = re.compile(r"^(?:lang=(zh_CN|en))?$")


class FastPath:
    """WSGI middleware: a cached public notice page is answered before Flask runs at all.

    Only ``GET``/``HEAD /notices/<slug>`` with no query but ``lang`` takes this path, and only
    when the page is in the cache and fresh; anything else goes to Flask, which renders the
    page, stores it, and so fills the cache for the next request. The language is chosen
    exactly as the view chooses it (``?lang=``, then Accept-Language, then the default).
    """

    def __init__(self, app: Flask, cache: PageCache) -> None:
        self.wsgi_app = app.wsgi_app
        self.cache = cache
        self.default_locale = app.config["BABEL_DEFAULT_LOCALE"]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ.get("REQUEST_METHOD")
        if method in ("GET", "HEAD"):
            path = NOTICE_PATH.match(environ.get("PATH_INFO", ""))
            query = LANG_QUERY.match(environ.get("QUERY_STRING", ""))
            if path and query:
                locale = query.group(1) or from_accept_language(
                    environ.get("HTTP_ACCEPT_LANGUAGE", "")) or self.default_locale
                page = self.cache.peek(("notice", path.group(1), locale))
                if page is not None:
                    return self._answer(page, environ, start_response, method == "HEAD")
        return self.wsgi_app(environ, start_response)

    @staticmethod
    def _answer(page: CachedPage, environ: dict[str, Any], start_response: Callable[..., Any],
                head: bool) -> list[bytes]:
        if page.not_modified(environ.get("HTTP_IF_NONE_MATCH"),
                             environ.get("HTTP_IF_MODIFIED_SINCE")):
            start_response("304 NOT MODIFIED", page.headers_304)
            return []
        start_response("200 OK", [*page.headers, ("Content-Length", str(len(page.body)))])
        return [] if head else [page.body]


def init_app(app: Flask) -> None:
    cache = PageCache(app.config["REDIS_URL"])
    app.extensions["public_page_cache"] = cache
    app.wsgi_app = FastPath(app, cache)  # type: ignore[method-assign]


def invalidate() -> None:
    page_cache().invalidate()
