"""A server-side cache of rendered public pages, built for the spike of an incident.

Each process keeps rendered pages in memory. Publishing (or withdrawing, or a new PDF) bumps a
generation counter in Redis; a process compares its generation with Redis at most once a
second and drops its pages when it moved, so a publication shows everywhere within a second
and immediately in the process that made it. Without Redis nothing is cached.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from redis.exceptions import RedisError
from werkzeug.http import http_date, parse_date

GENERATION_KEY = "aftercare:public:generation"
CHECK_EVERY_SECONDS = 1.0
MAX_PAGES = 2000


MAX_AGE_SECONDS = 60


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

        etag = hashlib.sha256(body).hexdigest()[:32]
        common = [("ETag", f'"{etag}"'), ("Cache-Control", f"public, max-age={MAX_AGE_SECONDS}"),
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


class PageCache:
    def __init__(self) -> None:
        self._pages: dict[Hashable, CachedPage] = {}
        self._generation: int | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def _redis(self):
        from portal.extensions import rq

        return rq.queue.connection

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
    return current_app.extensions.setdefault("public_page_cache", PageCache())


def invalidate() -> None:
    page_cache().invalidate()
