"""Where a user-supplied address (a ``next`` parameter, the Referer) may send a browser: only
to a path on this site. Every redirect or link built from user input goes through here."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from flask import Flask, request, url_for

# Browsers drop tabs and newlines inside a URL and read a backslash as a slash, so "/\t/x" and
# "/\x" both become "//x": another host. Such characters (and spaces) refuse the target.
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
MAX_LENGTH = 2048


def _fully_decoded(path: str) -> str:
    """Percent-decode until nothing changes, so "%252F" cannot hide a "/"."""
    for _ in range(5):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    return path


def local_target(target: str | None) -> str | None:
    """``target`` unchanged (query string included) when it is a path on this site, else None.

    Accepted: "/cases/?status=new". Refused: "//x", "/\\x", "/\\t/x", "%2F%2Fx", "/%5Cx",
    "https:x", "javascript:…", anything with a control character, space or backslash.
    """
    if not target or len(target) > MAX_LENGTH or not target.startswith("/"):
        return None
    if _UNSAFE.search(target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    path = _fully_decoded(parts.path)
    if path.startswith("//") or _UNSAFE.search(path):
        return None
    return target


def safe_next(target: str | None, fallback_endpoint: str = "main.dashboard") -> str:
    """The local ``target``, or the fallback page's address."""
    return local_target(target) or url_for(fallback_endpoint)


def safe_referrer(fallback: str) -> str:
    """The page this request came from, when it is on this site (as a local path); else
    ``fallback``."""
    referrer = request.referrer or ""
    parts = urlsplit(referrer)
    if parts.scheme in ("http", "https") and parts.netloc == request.host:
        local = local_target(parts.path + (f"?{parts.query}" if parts.query else ""))
        if local:
            return local
    return fallback


def init_app(app: Flask) -> None:
    app.jinja_env.globals["safe_referrer"] = safe_referrer
